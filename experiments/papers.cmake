# Contract: one executable per reproduced paper (experiments/<paper>/main.cpp ->
# build/bin/paper_<paper>), sharing the header-only helpers in experiments/common/,
# and one ctest smoke test per driver: `paper_<paper> --quick --out <scratch dir>`
# (tiny sizes, a few seconds, figures included). included from experiments/CMakeLists.txt.
# scripts/reproduce_all.sh builds these targets and runs every driver at full size.
set(REMAT_PAPERS sqrt_n_claim chen2016 griewank2000 gruslys2016 beaumont2019 kirisame2021 jain2020 seed_claims)
if(REMAT_TESTS)
  enable_testing()  # this directory is configured before the top level enables testing
endif()

foreach(paper IN LISTS REMAT_PAPERS)
  if(NOT EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${paper}/main.cpp)
    continue()
  endif()
  add_executable(paper_${paper} ${CMAKE_CURRENT_SOURCE_DIR}/${paper}/main.cpp)
  target_link_libraries(paper_${paper} PRIVATE remat_cli remat_models remat::remat fmt::fmt)
  target_compile_definitions(paper_${paper} PRIVATE REMAT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  target_compile_options(paper_${paper} PRIVATE -Wall -Wextra)
  if(REMAT_TESTS)
    add_test(NAME paper_${paper}_quick
             COMMAND paper_${paper} --quick --out ${PROJECT_BINARY_DIR}/paper_smoke/${paper})
    set_tests_properties(paper_${paper}_quick PROPERTIES
      TIMEOUT 300
      ENVIRONMENT "OMP_WAIT_POLICY=passive;OMP_NUM_THREADS=2;OPENBLAS_NUM_THREADS=2")
  endif()
endforeach()

# The drivers that take real models (--onnx), on a resnet18 exported by PyTorch.
if(REMAT_TESTS AND TARGET paper_chen2016 AND TARGET paper_kirisame2021 AND Python3_EXECUTABLE)
  add_test(NAME paper_real_models_quick
           COMMAND ${CMAKE_COMMAND} -DPYTHON=${Python3_EXECUTABLE} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
                   -DBIN_DIR=$<TARGET_FILE_DIR:paper_chen2016> -DSCRATCH=${PROJECT_BINARY_DIR}/paper_smoke/real_models
                   -P ${CMAKE_CURRENT_SOURCE_DIR}/real_models_check.cmake)
  set_tests_properties(paper_real_models_quick PROPERTIES
    TIMEOUT 300
    ENVIRONMENT "OMP_WAIT_POLICY=passive;OMP_NUM_THREADS=2;OPENBLAS_NUM_THREADS=2")
endif()

add_custom_target(papers)
foreach(paper IN LISTS REMAT_PAPERS)
  if(TARGET paper_${paper})
    add_dependencies(papers paper_${paper})
  endif()
endforeach()
