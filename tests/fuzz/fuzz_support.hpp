#pragma once
// Helpers shared by the libFuzzer targets (docs/fuzzing.md): the split of one fuzz input into
// the parts of a multipart message, and a scratch file for the readers that only take a path.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <unistd.h>

namespace anisoflow::fuzz {

/// Parts of a multipart message are separated by this marker in a fuzz input ("scissors"); an
/// input without it is a one-part message. The dictionaries list it so mutations insert it.
inline constexpr std::string_view kPartSeparator = "--8<--";

inline std::span<const std::byte> as_bytes(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const std::byte*>(data), size};
}

/// The parts of `input`, cut at every kPartSeparator (empty parts kept).
inline std::vector<std::span<const std::byte>> split_parts(std::span<const std::byte> input) {
    const std::string_view text(reinterpret_cast<const char*>(input.data()), input.size());
    std::vector<std::span<const std::byte>> parts;
    std::size_t begin = 0;
    while (true) {
        const std::size_t end = text.find(kPartSeparator, begin);
        if (end == std::string_view::npos) {
            parts.push_back(input.subspan(begin));
            return parts;
        }
        parts.push_back(input.subspan(begin, end - begin));
        begin = end + kPartSeparator.size();
    }
}

/// One file per fuzzing process, rewritten for every input, in a private directory under
/// /dev/shm when it exists (no disk traffic), else under TMPDIR or /tmp.
class ScratchFile {
  public:
    explicit ScratchFile(std::string_view name) {
        std::error_code ec;
        std::filesystem::path base = "/dev/shm";
        if (!std::filesystem::is_directory(base, ec) || ::access(base.c_str(), W_OK) != 0) {
            const char* tmp = std::getenv("TMPDIR");  // NOLINT(concurrency-mt-unsafe)
            base = tmp != nullptr ? tmp : "/tmp";
        }
        std::string pattern = (base / "anisoflow-fuzz-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            std::abort();  // the harness cannot run at all: not a finding about the input
        }
        directory_ = pattern;
        path_ = directory_ / name;
    }
    ScratchFile(const ScratchFile&) = delete;
    ScratchFile& operator=(const ScratchFile&) = delete;
    ~ScratchFile() {
        std::error_code ec;
        std::filesystem::remove_all(directory_, ec);
    }

    /// Replaces the file's contents with `bytes`, then sets its size to `size_bytes` (zeros or
    /// a cut) when given: sparse, so a large GE file costs no memory.
    const std::filesystem::path& write(std::span<const std::byte> bytes,
                                       std::uintmax_t size_bytes = 0) {
        {
            std::ofstream out(path_, std::ios::binary | std::ios::trunc);
            out.write(reinterpret_cast<const char*>(bytes.data()),
                      static_cast<std::streamsize>(bytes.size()));
        }
        if (size_bytes != 0) {
            std::error_code ec;
            std::filesystem::resize_file(path_, size_bytes, ec);
        }
        return path_;
    }

    [[nodiscard]] const std::filesystem::path& path() const { return path_; }

  private:
    std::filesystem::path directory_;
    std::filesystem::path path_;
};

}  // namespace anisoflow::fuzz
