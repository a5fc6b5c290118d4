// Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/) with the project's own
// writers and emulators: transport::encode_*, the DECTRIS emulator of the unit tests, lib/codec,
// format_poni, runtime::to_toml, io::FrameStackWriter, and libtiff for TIFF pages.
// Usage: fuzz_make_seeds <repo root> <corpus dir>   (docs/fuzzing.md)

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <hdf5.h>
#include <tiffio.h>

#include "anisoflow/config/v1/services.pb.h"

#include "anisoflow/codec/bitshuffle.hpp"
#include "anisoflow/codec/lz4.hpp"
#include "anisoflow/geometry/poni.hpp"
#include "anisoflow/io/frame_stack_writer.hpp"
#include "anisoflow/runtime/config_loader.hpp"
#include "anisoflow/transport/message.hpp"

#include "dectris_emulator.hpp"
#include "fuzz_support.hpp"
#include "sample_messages.hpp"

namespace {

using namespace anisoflow;  // NOLINT(google-build-using-namespace)
namespace fs = std::filesystem;
using Bytes = std::vector<std::byte>;

fs::path g_corpus;
int g_failures = 0;

void check(bool ok, std::string_view what) {
    if (!ok) {
        std::fprintf(stderr, "make_seeds: %.*s failed\n", static_cast<int>(what.size()),
                     what.data());
        ++g_failures;
    }
}

Bytes bytes_of(std::string_view text) {
    const auto* begin = reinterpret_cast<const std::byte*>(text.data());
    return {begin, begin + text.size()};
}

void save(const std::string& target, const std::string& name, const Bytes& bytes) {
    const fs::path dir = g_corpus / target;
    fs::create_directories(dir);
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
}

Bytes prefixed(std::uint8_t first, const Bytes& rest) {
    Bytes out{std::byte{first}};
    out.insert(out.end(), rest.begin(), rest.end());
    return out;
}

/// Parts joined with the harnesses' separator.
template <class Parts, class Bytes_of>
Bytes join(const Parts& parts, Bytes_of&& part_bytes) {
    Bytes out;
    bool first = true;
    for (const auto& part : parts) {
        if (!first) {
            const Bytes separator = bytes_of(fuzz::kPartSeparator);
            out.insert(out.end(), separator.begin(), separator.end());
        }
        first = false;
        const std::span<const std::byte> bytes = part_bytes(part);
        out.insert(out.end(), bytes.begin(), bytes.end());
    }
    return out;
}

Bytes join_zmq(const transport::Multipart& parts) {
    return join(parts, [](const zmq::message_t& m) { return transport::bytes_of(m); });
}

void transport_seeds() {
    namespace sample = transport::sample;
    namespace pb = transport::pb;
    const std::string target = "fuzz_transport_decode";
    if (auto m = transport::encode_control(sample::run_start())) {
        save(target, "run_start", join_zmq(*m));
    }
    if (auto m = transport::encode_control(sample::run_end())) {
        save(target, "run_end", join_zmq(*m));
    }
    if (auto m = transport::encode_control(sample::heartbeat())) {
        save(target, "heartbeat", join_zmq(*m));
    }
    {
        auto header = sample::frame_header(4, 6, pb::PIXEL_DTYPE_UINT16);
        auto m = transport::encode_frame(
            header, transport::make_payload(sample::values<std::uint16_t>(24, 1)));
        check(m.has_value(), "raw frame");
        if (m) {
            save(target, "frame_raw_u16", join_zmq(*m));
        }
    }
    {
        const auto pixels = sample::values<std::uint32_t>(std::size_t{8} * 5, 2);
        const auto raw = std::as_bytes(std::span(pixels));
        for (const auto& [name, encoding] : {std::pair{"frame_bslz4_u32", pb::ENCODING_BSLZ4},
                                             std::pair{"frame_lz4_u32", pb::ENCODING_LZ4}}) {
            auto header = sample::frame_header(8, 5, pb::PIXEL_DTYPE_UINT32);
            header.set_encoding(encoding);
            header.set_uncompressed_size_bytes(raw.size());
            auto payload = encoding == pb::ENCODING_BSLZ4 ? codec::bslz4_compress(raw, 4)
                                                          : codec::lz4_hdf5_compress(raw);
            check(payload.has_value(), name);
            auto m = transport::encode_frame(header, transport::make_payload(std::move(*payload)));
            check(m.has_value(), name);
            if (m) {
                save(target, name, join_zmq(*m));
            }
        }
    }
    {
        const auto header = sample::reduced_header(6, 4);
        auto m = transport::encode_reduced(header, sample::cake_parts(header));
        check(m.has_value(), "reduced");
        if (m) {
            save(target, "reduced", join_zmq(*m));
        }
    }
    {
        const auto header = sample::result_header(3, 2);
        auto m = transport::encode_result(header, sample::curve_parts(header));
        check(m.has_value(), "result");
        if (m) {
            save(target, "result", join_zmq(*m));
        }
    }
    {
        pb::WorkerCredit credit;
        credit.set_instance("reduce-0");
        if (auto m = transport::encode_control(credit)) {
            save(target, "worker_credit", join_zmq(*m));
        }
    }
    {
        pb::ArchiveReceipts receipts;
        receipts.set_session(0x5EED);
        pb::RunReceipt& run = *receipts.add_runs();
        run.set_run_id(sample::kRunId);
        pb::SequenceRange& raw = *run.add_raw();
        raw.set_first(0);
        raw.set_last(12);
        pb::SequenceRange& cakes = *run.add_cakes();
        cakes.set_first(3);
        cakes.set_last(12);
        run.set_has_result(true);
        run.set_result_frames_p(5);
        run.set_result_frames_n(5);
        if (auto m = transport::encode_control(receipts)) {
            save(target, "archive_receipts", join_zmq(*m));
        }
    }
}

void dectris_seeds() {
    namespace emu = dectris::emulator;
    emu::SeriesSettings settings;
    settings.number_of_images = 1;
    const auto join_parts = [](const emu::Multipart& parts) {
        return join(parts, [](const emu::Part& p) { return std::span<const std::byte>(p); });
    };
    save("fuzz_dectris_v1", "start_basic", join_parts(emu::v1_start(settings, "basic")));
    save("fuzz_dectris_v1", "start_none", join_parts(emu::v1_start(settings, "none")));
    save("fuzz_dectris_v1", "end", join_parts(emu::v1_end(settings)));
    settings.width_px = 9;
    settings.height_px = 7;
    for (const auto& [name, encoding] :
         {std::pair{"raw", emu::WireEncoding::kRaw}, std::pair{"lz4", emu::WireEncoding::kLz4},
          std::pair{"bslz4", emu::WireEncoding::kBslz4}}) {
        const auto pixels = emu::synthetic_pixels(settings, 0);
        save("fuzz_dectris_v1", std::string("image_") + name,
             join_parts(emu::v1_image(settings, 0, pixels, encoding)));
        auto value = emu::v2_image_value(settings, 0, encoding);
        save("fuzz_dectris_v2", std::string("image_") + name, emu::encode_cbor(value));
    }
    settings.pixel_type = PixelType::kUint32;
    settings.channels = {"threshold_1", "threshold_2"};
    save("fuzz_dectris_v2", "image_bslz4_u32_two_channels",
         emu::encode_cbor(emu::v2_image_value(settings, 1, emu::WireEncoding::kBslz4)));
    save("fuzz_dectris_v2", "start", emu::encode_cbor(emu::v2_start_value(settings)));
    save("fuzz_dectris_v2", "start_untagged",
         emu::encode_cbor(emu::v2_start_value(settings), false));
    save("fuzz_dectris_v2", "end", emu::encode_cbor(emu::v2_end_value(settings)));
}

void codec_seeds(const fs::path& root) {
    Bytes data(640);
    for (std::size_t i = 0; i < data.size(); ++i) {
        data[i] = static_cast<std::byte>((i * i / 7) % 23);
    }
    if (auto block = codec::lz4_compress_block(data)) {
        save("fuzz_codec_lz4", "block_640", prefixed(640 / 64, *block));
    }
    if (auto framed = codec::lz4_hdf5_compress(data, 256)) {
        save("fuzz_codec_lz4", "hdf5_blocks_256", prefixed(1, *framed));
    }
    if (auto framed = codec::lz4_hdf5_compress(data)) {
        save("fuzz_codec_lz4", "hdf5_one_block", prefixed(3, *framed));
    }
    // The bitshuffle library's own output (tests/data/bitshuffle), element size in byte 0.
    for (const auto& entry : fs::directory_iterator(root / "tests/data/bitshuffle")) {
        const std::string name = entry.path().filename().string();
        if (entry.path().extension() != ".bslz4" || entry.file_size() > 8192) {
            continue;
        }
        const std::uint8_t element = name.starts_with("u8")    ? 0
                                     : name.starts_with("u16") ? 1
                                     : name.starts_with("u32") ? 2
                                                               : 3;
        std::ifstream in(entry.path(), std::ios::binary);
        const std::string text((std::istreambuf_iterator<char>(in)), {});
        save("fuzz_codec_bslz4", name, prefixed(element, bytes_of(text)));
    }
    if (auto shuffled = codec::bitshuffle(data, 2, 64)) {
        save("fuzz_codec_bslz4", "bitshuffle_u16_b64", prefixed(0x80 | 0x08 | 1, *shuffled));
    }
    if (auto blocks = codec::bslz4_compress_blocks(data, 4, 0)) {
        // mode 1: byte 1 is the decoded size / 64, block size 0 (default)
        Bytes input{std::byte{0x04 | 2}, std::byte{640 / 64}};
        input.insert(input.end(), blocks->begin(), blocks->end());
        save("fuzz_codec_bslz4", "blocks_u32_default", input);
    }
}

void poni_seeds() {
    geometry::PoniGeometry g;
    g.poni_version = "2.1";
    g.detector = geometry::DetectorModel{"Detector", 200e-6, 200e-6, FrameShape{2048, 2048}};
    g.distance_m = 0.35;
    g.poni1_m = 0.2048;
    g.poni2_m = 0.2052;
    g.rot1_rad = 0.001;
    g.rot2_rad = -0.002;
    g.wavelength_m = 1.2398e-11;
    save("fuzz_poni", "format_poni_v21", bytes_of(geometry::format_poni(g)));
    save("fuzz_poni", "pyfai_v1",
         bytes_of("# Calibration done at Tue May 17 10:31:02 2024\n"
                  "PixelSize1: 0.0002\nPixelSize2: 0.0002\nDistance: 0.35\nPoni1: 0.2\n"
                  "Poni2: 0.21\nRot1: 0.0\nRot2: 0.0\nRot3: 0.0\nWavelength: 1.2398e-11\n"));
    save("fuzz_poni", "pyfai_v2_model",
         bytes_of("poni_version: 2\nDetector: Perkin\nDetector_config: {}\nDistance: 1.0\n"
                  "Poni1: 0.2\nPoni2: 0.2\nRot1: 0\nRot2: 0\nRot3: 0\nWavelength: 1e-10\n"));
}

void config_seeds(const fs::path& root) {
    const char* services[] = {"ingest", "reduce", "analyze", "archive", "gateway"};
    for (std::uint8_t kind = 0; kind < 5; ++kind) {
        std::ifstream in(root / "deploy/config" / (std::string(services[kind]) + ".toml"));
        const std::string text((std::istreambuf_iterator<char>(in)), {});
        save("fuzz_config_toml", std::string(services[kind]) + ".toml",
             prefixed(kind, bytes_of(text)));
    }
    config::v1::DectrisRun run;
    *run.mutable_experiment() = transport::sample::run_start().config();
    run.set_dark_images(2);
    run.set_run_id_prefix("zrcu-");
    save("fuzz_config_toml", "dectris_run.toml", prefixed(5, bytes_of(runtime::to_toml(run))));
    save("fuzz_config_toml", "experiment.toml",
         prefixed(6, bytes_of(runtime::to_toml(transport::sample::run_start().config()))));
    save("fuzz_config_toml", "override_threads", prefixed(0x80 | 1, bytes_of("threads=3")));
    save("fuzz_config_toml", "override_list",
         prefixed(0x80 | 6, bytes_of("composition=[\"Zr\", \"Cu\"]")));
}

Bytes read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    return bytes_of(text);
}

void hdf5_seeds(const fs::path& scratch) {
    for (const auto& [name, type, gzip] : {std::tuple{"stack_u16_gzip", PixelType::kUint16, 1},
                                           std::tuple{"frame_f32_plain", PixelType::kFloat32, 0}}) {
        const fs::path file = scratch / (std::string(name) + ".h5");
        io::FrameStackOptions options;
        options.gzip_level = gzip;
        options.count_time_s = 0.1;
        auto writer = io::FrameStackWriter::create(file, FrameShape{6, 5}, type, options);
        check(writer.has_value(), name);
        if (!writer) {
            continue;
        }
        for (int i = 0; i < (gzip != 0 ? 2 : 1); ++i) {
            Frame frame =
                type == PixelType::kUint16
                    ? Frame::from_vector(FrameShape{6, 5},
                                         transport::sample::values<std::uint16_t>(30, i))
                    : Frame::from_vector(FrameShape{6, 5}, transport::sample::values<float>(30, i));
            check(writer->append(frame.view()).has_value(), name);
        }
        check(writer->close().has_value(), name);
        save("fuzz_io_hdf5", name, read_file(file));
    }
    // A 2D mask at /mask (one of the default mask datasets), through the HDF5 C API.
    const fs::path file = scratch / "mask.h5";
    const hid_t h5 = H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t dims[2] = {4, 4};
    const hid_t space = H5Screate_simple(2, dims, nullptr);
    const hid_t dataset =
        H5Dcreate2(h5, "/mask", H5T_STD_U8LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const std::uint8_t mask[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    check(H5Dwrite(dataset, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, mask) >= 0, "mask");
    H5Dclose(dataset);
    H5Sclose(space);
    H5Fclose(h5);
    save("fuzz_io_hdf5", "mask_u8", read_file(file));
}

template <class T>
void write_tiff_pages(const fs::path& file, std::uint32_t rows, std::uint32_t cols, int pages,
                      std::uint16_t format, std::uint32_t tile) {
    TIFF* tif = TIFFOpen(file.c_str(), "w");
    check(tif != nullptr, "tiff open");
    if (tif == nullptr) {
        return;
    }
    for (int page = 0; page < pages; ++page) {
        const auto values = transport::sample::values<T>(std::size_t{rows} * cols, page);
        TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, cols);
        TIFFSetField(tif, TIFFTAG_IMAGELENGTH, rows);
        TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
        TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, static_cast<int>(8 * sizeof(T)));
        TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, format);
        TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
        TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
        if (tile != 0) {
            TIFFSetField(tif, TIFFTAG_TILEWIDTH, tile);
            TIFFSetField(tif, TIFFTAG_TILELENGTH, tile);
            std::vector<T> buffer(std::size_t{tile} * tile);
            for (std::uint32_t y = 0; y < rows; y += tile) {
                for (std::uint32_t x = 0; x < cols; x += tile) {
                    for (std::uint32_t r = 0; r < tile; ++r) {
                        for (std::uint32_t c = 0; c < tile; ++c) {
                            const bool inside = y + r < rows && x + c < cols;
                            buffer[r * tile + c] = inside ? values[(y + r) * cols + x + c] : T{};
                        }
                    }
                    TIFFWriteTile(tif, buffer.data(), x, y, 0, 0);
                }
            }
        } else {
            TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 3);
            for (std::uint32_t row = 0; row < rows; ++row) {
                auto* line = const_cast<T*>(values.data() + std::size_t{row} * cols);  // NOLINT
                TIFFWriteScanline(tif, line, row, 0);
            }
        }
        TIFFWriteDirectory(tif);
    }
    TIFFClose(tif);
}

void tiff_seeds(const fs::path& scratch) {
    const fs::path strips = scratch / "strips.tif";
    write_tiff_pages<std::uint16_t>(strips, 7, 5, 2, SAMPLEFORMAT_UINT, 0);
    save("fuzz_io_tiff", "strips_u16_two_pages", read_file(strips));
    const fs::path tiles = scratch / "tiles.tif";
    write_tiff_pages<float>(tiles, 20, 18, 1, SAMPLEFORMAT_IEEEFP, 16);
    save("fuzz_io_tiff", "tiles_f32", read_file(tiles));
    const fs::path signed_file = scratch / "i32.tif";
    write_tiff_pages<std::int32_t>(signed_file, 4, 4, 1, SAMPLEFORMAT_INT, 0);
    save("fuzz_io_tiff", "strips_i32_mask_shape", read_file(signed_file));
}

void ge_seeds() {
    // Byte 0: frames in bits 0-1, size delta + 4 in bits 2-4, bit 7 = the input is the file.
    const Bytes header(64, std::byte{0x47});
    save("fuzz_io_ge", "one_frame", prefixed(0x10 | 1, header));
    save("fuzz_io_ge", "two_frames", prefixed(0x10 | 2, header));
    save("fuzz_io_ge", "one_frame_short", prefixed(0x0C | 1, header));
    save("fuzz_io_ge", "header_only", prefixed(0x10, header));
    save("fuzz_io_ge", "tiny_file", prefixed(0x80, header));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: fuzz_make_seeds <repo root> <corpus dir>\n");
        return 2;
    }
    try {
        const fs::path root = argv[1];
        g_corpus = argv[2];
        const fuzz::ScratchFile scratch("unused");
        const fs::path scratch_dir = scratch.path().parent_path();
        transport_seeds();
        dectris_seeds();
        codec_seeds(root);
        poni_seeds();
        config_seeds(root);
        hdf5_seeds(scratch_dir);
        tiff_seeds(scratch_dir);
        ge_seeds();
    } catch (const std::exception& error) {  // a filesystem error: no seeds written
        std::fprintf(stderr, "make_seeds: %s\n", error.what());
        return 1;
    }
    if (g_failures != 0) {
        std::fprintf(stderr, "make_seeds: %d seed(s) failed\n", g_failures);
        return 1;
    }
    std::printf("make_seeds: corpus written to %s\n", g_corpus.c_str());
    return 0;
}
