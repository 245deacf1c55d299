// Build-target helpers for the core's hot loops. No Python in here.
#pragma once

#include <cstddef>  // pulls in the C library's feature macros (__GLIBC__)

// LF_CLONES compiles a hot loop for AVX-512F, AVX2 and baseline x86-64 and picks one when the
// module loads (GCC function multiversioning through glibc ifunc). The loops use IEEE float
// operations only and the build turns FMA contraction off (-ffp-contract=off), so every clone
// computes bitwise the same result; only the speed differs. Elsewhere: a plain function.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
#define LF_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LF_CLONES
#endif
