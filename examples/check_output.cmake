# Contract: runs one example and checks what it prints. Called by ctest as
#   cmake -DEXE=path -DARGS=a@@b -DEXPECT=regex1@@regex2 -P check_output.cmake
# (@@ separates list items, since ctest would split on ';'). Fails, printing the
# output, when the example exits non-zero or a regex matches no part of its output.
string(REPLACE "@@" ";" args "${ARGS}")
execute_process(COMMAND ${EXE} ${args} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "[examples] ${EXE} exited with ${rc}\n${err}")
endif()
string(REPLACE "@@" ";" expectations "${EXPECT}")
foreach(regex IN LISTS expectations)
  if(NOT out MATCHES "${regex}")
    message(FATAL_ERROR "[examples] ${EXE}: no line matches '${regex}'")
  endif()
endforeach()
