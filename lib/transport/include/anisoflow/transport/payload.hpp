#pragma once
// Payload parts (pixels, cakes, curves) as zmq::message_t without copying them: a payload is
// handed to ZeroMQ together with its owner, which ZeroMQ releases once the bytes are sent
// (docs/adr/0004-pixels-outside-protobuf.md).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include <zmq.hpp>

namespace anisoflow::transport {

namespace detail {
/// Releases the owner that make_payload() handed to ZeroMQ (a zmq_free_fn).
template <class Owner>
void release_owner(void* /*data*/, void* hint) {
    delete static_cast<Owner*>(hint);  // NOLINT(cppcoreguidelines-owning-memory)
}
}  // namespace detail

/// A payload part that takes over `values` without copying: the vector's buffer is what
/// ZeroMQ sends, and it is freed when ZeroMQ is done with it.
template <class T>
requires std::is_trivially_copyable_v<T> zmq::message_t make_payload(std::vector<T>&& values) {
    if (values.empty()) {
        return zmq::message_t();
    }
    auto* owner = new std::vector<T>(std::move(values));  // NOLINT(cppcoreguidelines-owning-memory)
    return zmq::message_t(owner->data(), owner->size() * sizeof(T),
                          &detail::release_owner<std::vector<T>>, owner);
}

/// A payload part over `bytes`, kept alive by a copy of `owner` until ZeroMQ is done with it
/// (zero copy from a buffer shared with other consumers, e.g. an archive writer).
template <class Owner>
zmq::message_t make_shared_payload(std::shared_ptr<Owner> owner, std::span<const std::byte> bytes) {
    if (bytes.empty()) {
        return zmq::message_t();
    }
    using Holder = std::shared_ptr<Owner>;
    auto* holder = new Holder(std::move(owner));  // NOLINT(cppcoreguidelines-owning-memory)
    // ZeroMQ's free-function interface takes a mutable pointer; it never writes through it.
    return zmq::message_t(const_cast<std::byte*>(bytes.data()),  // NOLINT
                          bytes.size(), &detail::release_owner<Holder>, holder);
}

/// A payload part holding a copy of `bytes` (for small payloads where the copy is cheap).
inline zmq::message_t copy_payload(std::span<const std::byte> bytes) {
    return zmq::message_t(bytes.data(), bytes.size());
}

/// The bytes of a received part.
inline std::span<const std::byte> bytes_of(const zmq::message_t& part) {
    return {static_cast<const std::byte*>(part.data()), part.size()};
}

/// The part's bytes as T values, without copying, when they are aligned for T and a whole
/// number of T; nullopt otherwise. Received parts may sit at any offset of ZeroMQ's buffer, so a
/// caller that needs the values either way uses copy_values().
template <class T>
requires std::is_trivially_copyable_v<T> std::optional<std::span<const T>> aligned_values(
    const zmq::message_t& part) {
    const auto address = reinterpret_cast<std::uintptr_t>(part.data());  // NOLINT
    if (part.size() % sizeof(T) != 0 || address % alignof(T) != 0) {
        return std::nullopt;
    }
    return std::span<const T>(static_cast<const T*>(part.data()), part.size() / sizeof(T));
}

/// A copy of the part's bytes as T values (trailing bytes short of one T are dropped; decode()
/// has already checked the sizes of the parts it accepted).
template <class T>
requires std::is_trivially_copyable_v<T> std::vector<T> copy_values(const zmq::message_t& part) {
    std::vector<T> values(part.size() / sizeof(T));
    if (!values.empty()) {
        std::memcpy(values.data(), part.data(), values.size() * sizeof(T));
    }
    return values;
}

}  // namespace anisoflow::transport
