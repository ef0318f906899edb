# Contract: the smoke test of the paper drivers on real architectures (ctest
# paper_real_models_quick): exports torchvision's resnet18 (batch 2, 32x32, random
# weights) with scripts/export_models.py, then runs paper_chen2016 and
# paper_kirisame2021 --quick --onnx on it; fails when the export or either driver
# fails (a broken promise exits 4). Arguments (-D): PYTHON, SOURCE_DIR, BIN_DIR, SCRATCH.
file(REMOVE_RECURSE ${SCRATCH})
file(MAKE_DIRECTORY ${SCRATCH})
execute_process(COMMAND ${PYTHON} ${SOURCE_DIR}/scripts/export_models.py --out ${SCRATCH} --models resnet18
                        --batch 2 --image 32
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "[paper_real_models_quick] exporting resnet18 failed (${rc}): is torchvision installed (scripts/install_deps.sh)?")
endif()
foreach(paper chen2016 kirisame2021)
  execute_process(COMMAND ${BIN_DIR}/paper_${paper} --quick --no-plot --out ${SCRATCH}/${paper}
                          --onnx ${SCRATCH}/resnet18.onnx
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "[paper_real_models_quick] paper_${paper} --onnx resnet18 exited ${rc}")
  endif()
endforeach()
