#pragma once
// Big-endian integers of the filter framings, read and written byte by byte (no alignment or
// host-order assumptions).

#include <cstddef>
#include <cstdint>
#include <span>

namespace anisoflow::codec::detail {

inline std::uint32_t read_u32_be(std::span<const std::byte, 4> bytes) {
    std::uint32_t value = 0;
    for (const std::byte b : bytes) {
        value = (value << 8U) | std::to_integer<std::uint32_t>(b);
    }
    return value;
}

inline std::uint64_t read_u64_be(std::span<const std::byte, 8> bytes) {
    std::uint64_t value = 0;
    for (const std::byte b : bytes) {
        value = (value << 8U) | std::to_integer<std::uint64_t>(b);
    }
    return value;
}

inline void write_u32_be(std::uint32_t value, std::span<std::byte, 4> out) {
    for (std::size_t i = 0; i < 4; ++i) {
        out[3 - i] = static_cast<std::byte>(value & 0xFFU);
        value >>= 8U;
    }
}

inline void write_u64_be(std::uint64_t value, std::span<std::byte, 8> out) {
    for (std::size_t i = 0; i < 8; ++i) {
        out[7 - i] = static_cast<std::byte>(value & 0xFFU);
        value >>= 8U;
    }
}

}  // namespace anisoflow::codec::detail
