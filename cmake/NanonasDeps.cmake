# Dependencies, all from Debian bookworm packages (scripts/setup.sh installs them).
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(Protobuf REQUIRED)            # Debian ships no protobuf CMake config: FindProtobuf.
find_package(gRPC CONFIG REQUIRED)
find_package(dnnl CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(FlatBuffers CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(ZLIB REQUIRED)
if(NANONAS_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
endif()

find_program(FLATC_EXECUTABLE flatc REQUIRED)
find_program(GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)

# OpenCV: only core/imgproc/imgcodecs are installed (Debian's OpenCVConfig.cmake comes with the
# full libopencv-dev meta package, which we do not want), so import the three libraries directly.
find_path(OPENCV_INCLUDE_DIR opencv2/core.hpp PATH_SUFFIXES opencv4 REQUIRED)
foreach(mod core imgproc imgcodecs)
  find_library(OPENCV_${mod}_LIB opencv_${mod} REQUIRED)
  if(NOT TARGET opencv::${mod})
    add_library(opencv::${mod} UNKNOWN IMPORTED)
    set_target_properties(opencv::${mod} PROPERTIES
      IMPORTED_LOCATION ${OPENCV_${mod}_LIB}
      INTERFACE_INCLUDE_DIRECTORIES ${OPENCV_INCLUDE_DIR})
  endif()
endforeach()

# Common warnings for our own targets.
function(nanonas_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
endfunction()
