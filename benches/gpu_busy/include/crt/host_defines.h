/* Minimal stand-in for CUDA's crt/host_defines.h (part of the nvcc package, not of the
 * nvidia-cuda-runtime / nvidia-cuda-cupti wheels): enough for a host-only C file to include
 * cupti.h. Only the macros those headers use. */
#pragma once
#define __host__
#define __device__
#define __device_builtin__
#define __cudart_builtin__
#define __align__(n) __attribute__((aligned(n)))
#define __builtin_align__(n) __attribute__((aligned(n)))
#define CUDARTAPI
