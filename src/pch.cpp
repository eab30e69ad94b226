// Compiles src/pch.h once; every other target reuses it (CMakeLists.txt).
