# The packages isolate's headers need, for our own build. Consumers of the
# installed package get the same list from isolateConfig.cmake (keep both in step).
find_package(Threads REQUIRED)
find_package(cereal CONFIG REQUIRED)
find_package(fmt CONFIG REQUIRED)
# Neither standalone Asio nor libseccomp ships a CMake package: our find
# modules provide isolate::asio and isolate::seccomp.
find_package(isolate_asio MODULE REQUIRED)
find_package(isolate_seccomp MODULE REQUIRED)
