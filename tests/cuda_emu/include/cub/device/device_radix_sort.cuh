// Emulation build: the one CUB call the backend makes (embedding.cu), DeviceRadixSort::SortPairs, on the
// host with CUB's interface and guarantees: a NULL temp_storage asks for the size; keys compare as unsigned
// over bits [begin_bit, end_bit); the sort is stable (equal keys keep their input order). An LSD radix sort
// with 8-bit digits, ping-ponging through the temporary storage as CUB's does.
#ifndef RT_EMU_CUB_DEVICE_RADIX_SORT_CUH
#define RT_EMU_CUB_DEVICE_RADIX_SORT_CUH

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <type_traits>

#include "cuda_runtime.h"

namespace rt_emu {
bool in_device_memory(const void *p, size_t bytes);
}

namespace cub {

struct DeviceRadixSort {
    template <class K, class V>
    static cudaError_t SortPairs(void *temp_storage, size_t &temp_bytes, const K *keys_in, K *keys_out,
                                 const V *values_in, V *values_out, int num_items, int begin_bit = 0,
                                 int end_bit = (int)sizeof(K) * 8, cudaStream_t stream = 0) {
        static_assert(std::is_unsigned<K>::value, "the emulated radix sort takes unsigned keys");
        size_t n = num_items > 0 ? (size_t)num_items : 0;
        size_t need = n * (sizeof(K) + sizeof(V)) + 16;
        if (!temp_storage) {
            temp_bytes = need;
            return cudaSuccess;
        }
        if (temp_bytes < need || begin_bit < 0 || end_bit > (int)sizeof(K) * 8 || begin_bit > end_bit)
            return cudaErrorInvalidValue;
        if (n == 0) return cudaSuccess;
        if (!rt_emu::in_device_memory(temp_storage, need) ||
            !rt_emu::in_device_memory(keys_in, n * sizeof(K)) ||
            !rt_emu::in_device_memory(keys_out, n * sizeof(K)) ||
            !rt_emu::in_device_memory(values_in, n * sizeof(V)) ||
            !rt_emu::in_device_memory(values_out, n * sizeof(V)))
            return cudaErrorInvalidValue; // on a GPU: an illegal address
        K *tk = (K *)temp_storage;
        V *tv = (V *)(tk + n);
        memcpy(keys_out, keys_in, n * sizeof(K));
        memcpy(values_out, values_in, n * sizeof(V));
        K *src_k = keys_out, *dst_k = tk;
        V *src_v = values_out, *dst_v = tv;
        for (int shift = begin_bit; shift < end_bit; shift += 8) {
            int bits = end_bit - shift < 8 ? end_bit - shift : 8;
            size_t count[257] = {0};
            for (size_t i = 0; i < n; i++) count[((src_k[i] >> shift) & ((1u << bits) - 1)) + 1]++;
            for (int d = 0; d < 256; d++) count[d + 1] += count[d];
            for (size_t i = 0; i < n; i++) { // in input order: stable
                size_t at = count[(src_k[i] >> shift) & ((1u << bits) - 1)]++;
                dst_k[at] = src_k[i];
                dst_v[at] = src_v[i];
            }
            K *sk = src_k;
            src_k = dst_k, dst_k = sk;
            V *sv = src_v;
            src_v = dst_v, dst_v = sv;
        }
        if (src_k != keys_out) {
            memcpy(keys_out, src_k, n * sizeof(K));
            memcpy(values_out, src_v, n * sizeof(V));
        }
        return cudaSuccess;
    }
};

} // namespace cub

#endif
