# Installs remat from REMAT_BINARY_DIR into SCRATCH/prefix, then configures,
# builds and runs the consumer project against it.
file(REMOVE_RECURSE ${SCRATCH})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${REMAT_BINARY_DIR} --prefix ${SCRATCH}/prefix
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "[consumer] install failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${SCRATCH}/build
                        -DCMAKE_PREFIX_PATH=${SCRATCH}/prefix -DCMAKE_BUILD_TYPE=Release RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "[consumer] configure failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${SCRATCH}/build RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "[consumer] build failed")
endif()
execute_process(COMMAND ${SCRATCH}/build/consumer RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "[consumer] the consumer ran but computed a wrong gradient")
endif()
