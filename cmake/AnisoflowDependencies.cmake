# Every third-party dependency is found here, once. docs/dependencies.md says why each is used.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(tl-expected REQUIRED)            # Result<T> = tl::expected (C++23 std::expected backport)
find_package(fmt REQUIRED)                    # error messages and log formatting
find_package(spdlog REQUIRED)                 # logging
find_package(HDF5 REQUIRED COMPONENTS C HL)   # frames, masks and NeXus output
find_package(TIFF REQUIRED)                   # TIFF frames and masks
find_package(CLI11 REQUIRED)                  # command line of the anisoflow tool
find_package(tomlplusplus REQUIRED)           # TOML configuration files (hand-edited, comments)
find_package(nlohmann_json REQUIRED)          # reading the PONI Detector_config and test references
find_package(Eigen3 REQUIRED NO_MODULE)       # small dense least-squares problems in the fits
pkg_check_modules(FFTW3 REQUIRED IMPORTED_TARGET fftw3)    # fast sine/cosine transforms (SPEC 6)
pkg_check_modules(XRL REQUIRED IMPORTED_TARGET libxrl)     # atomic form factors, Compton (SPEC 5)
# The streaming services (issue 4): transport, schema, metrics, compressed detector payloads.
find_package(cppzmq REQUIRED)                 # ZeroMQ sockets between services (C++ binding)
find_package(Protobuf REQUIRED)               # versioned message metadata (proto/)
find_package(prometheus-cpp REQUIRED)         # /metrics endpoints of every service
find_package(Boost REQUIRED)                  # Asio/Beast for the HTTP gateway (header-only)
pkg_check_modules(LZ4 REQUIRED IMPORTED_TARGET liblz4)     # lz4 and bitshuffle-lz4 payloads
pkg_check_modules(CBOR REQUIRED IMPORTED_TARGET libcbor)   # DECTRIS Stream v2 messages
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)  # CURVE key generation
if(ANISOFLOW_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(ANISOFLOW_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
