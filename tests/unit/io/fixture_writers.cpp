#include "fixture_writers.hpp"

#include <cstring>
#include <fstream>
#include <type_traits>

#include <tiffio.h>

namespace anisoflow::io::fixtures {
namespace {

struct Closer {
    hid_t id;
    herr_t (*close)(hid_t);
    ~Closer() {
        if (id >= 0) {
            close(id);
        }
    }
};

hid_t open_or_create(const std::filesystem::path& file) {
    if (std::filesystem::exists(file)) {
        return H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    }
    return H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
}

hid_t link_create_plist() {
    const hid_t plist = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(plist, 1);
    return plist;
}

::testing::AssertionResult write_any(const std::filesystem::path& file, const std::string& path,
                                     hid_t space, hid_t file_type, hid_t memory_type,
                                     const void* data, hid_t create_plist) {
    const Closer f{open_or_create(file), H5Fclose};
    if (f.id < 0) {
        return ::testing::AssertionFailure() << "cannot open " << file;
    }
    const Closer link{link_create_plist(), H5Pclose};
    const Closer dataset{
        H5Dcreate2(f.id, path.c_str(), file_type, space, link.id, create_plist, H5P_DEFAULT),
        H5Dclose};
    if (dataset.id < 0) {
        return ::testing::AssertionFailure() << "cannot create " << path << " in " << file;
    }
    if (H5Dwrite(dataset.id, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        return ::testing::AssertionFailure() << "cannot write " << path << " in " << file;
    }
    return ::testing::AssertionSuccess();
}

template <class T>
std::uint16_t sample_format() {
    if constexpr (std::is_floating_point_v<T>) {
        return SAMPLEFORMAT_IEEEFP;
    } else if constexpr (std::is_signed_v<T>) {
        return SAMPLEFORMAT_INT;
    } else {
        return SAMPLEFORMAT_UINT;
    }
}

template <class T>
hid_t native_type();

template <>
hid_t native_type<std::uint8_t>() {
    return H5T_NATIVE_UINT8;
}
template <>
hid_t native_type<std::uint16_t>() {
    return H5T_NATIVE_UINT16;
}
template <>
hid_t native_type<std::int32_t>() {
    return H5T_NATIVE_INT32;
}
template <>
hid_t native_type<std::int64_t>() {
    return H5T_NATIVE_INT64;
}
template <>
hid_t native_type<float>() {
    return H5T_NATIVE_FLOAT;
}
template <>
hid_t native_type<double>() {
    return H5T_NATIVE_DOUBLE;
}

}  // namespace

template <class T>
::testing::AssertionResult write_hdf5(const std::filesystem::path& file, const std::string& path,
                                      const std::vector<hsize_t>& dims,
                                      const std::vector<T>& values, const Hdf5Layout& layout) {
    const Closer space{H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                       H5Sclose};
    const Closer create{H5Pcreate(H5P_DATASET_CREATE), H5Pclose};
    if (!layout.chunk.empty()) {
        H5Pset_chunk(create.id, static_cast<int>(layout.chunk.size()), layout.chunk.data());
        if (layout.gzip_level >= 0) {
            H5Pset_deflate(create.id, static_cast<unsigned>(layout.gzip_level));
        }
    }
    return write_any(file, path, space.id, native_type<T>(), native_type<T>(), values.data(),
                     create.id);
}

template ::testing::AssertionResult write_hdf5<std::uint8_t>(const std::filesystem::path&,
                                                             const std::string&,
                                                             const std::vector<hsize_t>&,
                                                             const std::vector<std::uint8_t>&,
                                                             const Hdf5Layout&);
template ::testing::AssertionResult write_hdf5<std::uint16_t>(const std::filesystem::path&,
                                                              const std::string&,
                                                              const std::vector<hsize_t>&,
                                                              const std::vector<std::uint16_t>&,
                                                              const Hdf5Layout&);
template ::testing::AssertionResult write_hdf5<std::int32_t>(const std::filesystem::path&,
                                                             const std::string&,
                                                             const std::vector<hsize_t>&,
                                                             const std::vector<std::int32_t>&,
                                                             const Hdf5Layout&);
template ::testing::AssertionResult write_hdf5<std::int64_t>(const std::filesystem::path&,
                                                             const std::string&,
                                                             const std::vector<hsize_t>&,
                                                             const std::vector<std::int64_t>&,
                                                             const Hdf5Layout&);
template ::testing::AssertionResult write_hdf5<float>(const std::filesystem::path&,
                                                      const std::string&,
                                                      const std::vector<hsize_t>&,
                                                      const std::vector<float>&, const Hdf5Layout&);
template ::testing::AssertionResult write_hdf5<double>(const std::filesystem::path&,
                                                       const std::string&,
                                                       const std::vector<hsize_t>&,
                                                       const std::vector<double>&,
                                                       const Hdf5Layout&);

::testing::AssertionResult write_hdf5_scalar(const std::filesystem::path& file,
                                             const std::string& path, double value) {
    const Closer space{H5Screate(H5S_SCALAR), H5Sclose};
    return write_any(file, path, space.id, H5T_NATIVE_DOUBLE, H5T_NATIVE_DOUBLE, &value,
                     H5P_DEFAULT);
}

::testing::AssertionResult write_hdf5_string(const std::filesystem::path& file,
                                             const std::string& path, const std::string& value) {
    const Closer space{H5Screate(H5S_SCALAR), H5Sclose};
    const Closer type{H5Tcopy(H5T_C_S1), H5Tclose};
    H5Tset_size(type.id, value.size() + 1);
    return write_any(file, path, space.id, type.id, type.id, value.c_str(), H5P_DEFAULT);
}

std::vector<std::string> read_string_attribute(const std::filesystem::path& file,
                                               const std::string& object, const std::string& name) {
    const Closer f{H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
    const Closer attribute{
        H5Aopen_by_name(f.id, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose};
    if (attribute.id < 0) {
        return {};
    }
    const Closer type{H5Aget_type(attribute.id), H5Tclose};
    const Closer space{H5Aget_space(attribute.id), H5Sclose};
    if (H5Tget_class(type.id) != H5T_STRING) {
        return {};
    }
    const auto n = static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.id));
    std::vector<std::string> values;
    if (H5Tis_variable_str(type.id) > 0) {
        std::vector<char*> texts(n);
        H5Aread(attribute.id, type.id, texts.data());
        for (char* text : texts) {
            values.emplace_back(text != nullptr ? text : "");
        }
        H5Dvlen_reclaim(type.id, space.id, H5P_DEFAULT, texts.data());
    } else {
        const std::size_t size = H5Tget_size(type.id);
        std::vector<char> buffer(n * size);
        H5Aread(attribute.id, type.id, buffer.data());
        for (std::size_t i = 0; i < n; ++i) {
            values.emplace_back(buffer.data() + i * size, strnlen(buffer.data() + i * size, size));
        }
    }
    return values;
}

std::vector<hsize_t> read_dims(const std::filesystem::path& file, const std::string& path) {
    const Closer f{H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
    const Closer dataset{H5Dopen2(f.id, path.c_str(), H5P_DEFAULT), H5Dclose};
    if (dataset.id < 0) {
        return {};
    }
    const Closer space{H5Dget_space(dataset.id), H5Sclose};
    std::vector<hsize_t> dims(static_cast<std::size_t>(H5Sget_simple_extent_ndims(space.id)));
    H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
    return dims;
}

template <class T>
::testing::AssertionResult write_tiff(const std::filesystem::path& file, std::uint32_t rows,
                                      std::uint32_t cols, const std::vector<std::vector<T>>& pages,
                                      const TiffLayout& layout) {
    TIFF* tif = TIFFOpen(file.c_str(), layout.append ? "a" : "w");
    if (tif == nullptr) {
        return ::testing::AssertionFailure() << "cannot create " << file;
    }
    const std::size_t pixel_bytes = sizeof(T) * layout.samples_per_pixel;
    for (const auto& page : pages) {
        TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, cols);
        TIFFSetField(tif, TIFFTAG_IMAGELENGTH, rows);
        TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, layout.samples_per_pixel);
        TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, static_cast<std::uint16_t>(8 * sizeof(T)));
        TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, sample_format<T>());
        TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, layout.photometric);
        TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
        TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_NONE);
        if (pages.size() > 1) {
            TIFFSetField(tif, TIFFTAG_SUBFILETYPE, FILETYPE_PAGE);
        }
        bool ok = true;
        if (layout.tile_size > 0) {
            const std::uint32_t tile = layout.tile_size;
            TIFFSetField(tif, TIFFTAG_TILEWIDTH, tile);
            TIFFSetField(tif, TIFFTAG_TILELENGTH, tile);
            std::vector<unsigned char> buffer(static_cast<std::size_t>(TIFFTileSize(tif)));
            for (std::uint32_t y = 0; y < rows; y += tile) {
                for (std::uint32_t x = 0; x < cols; x += tile) {
                    std::fill(buffer.begin(), buffer.end(), 0);
                    for (std::uint32_t r = 0; r < tile && y + r < rows; ++r) {
                        const std::uint32_t n = std::min(tile, cols - x);
                        std::memcpy(buffer.data() + r * tile * pixel_bytes,
                                    page.data() + ((y + r) * cols + x) * layout.samples_per_pixel,
                                    n * pixel_bytes);
                    }
                    ok = ok && TIFFWriteTile(tif, buffer.data(), x, y, 0, 0) >= 0;
                }
            }
        } else {
            TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, layout.rows_per_strip);
            for (std::uint32_t row = 0; row < rows; ++row) {
                auto* line = const_cast<T*>(page.data() + row * cols * layout.samples_per_pixel);
                ok = ok && TIFFWriteScanline(tif, line, row, 0) >= 0;
            }
        }
        ok = ok && TIFFWriteDirectory(tif) != 0;
        if (!ok) {
            TIFFClose(tif);
            return ::testing::AssertionFailure() << "cannot write a page of " << file;
        }
    }
    TIFFClose(tif);
    return ::testing::AssertionSuccess();
}

template ::testing::AssertionResult write_tiff<std::uint8_t>(
    const std::filesystem::path&, std::uint32_t, std::uint32_t,
    const std::vector<std::vector<std::uint8_t>>&, const TiffLayout&);
template ::testing::AssertionResult write_tiff<std::uint16_t>(
    const std::filesystem::path&, std::uint32_t, std::uint32_t,
    const std::vector<std::vector<std::uint16_t>>&, const TiffLayout&);
template ::testing::AssertionResult write_tiff<std::int32_t>(
    const std::filesystem::path&, std::uint32_t, std::uint32_t,
    const std::vector<std::vector<std::int32_t>>&, const TiffLayout&);
template ::testing::AssertionResult write_tiff<float>(const std::filesystem::path&, std::uint32_t,
                                                      std::uint32_t,
                                                      const std::vector<std::vector<float>>&,
                                                      const TiffLayout&);

::testing::AssertionResult write_directory_first_tiff(const std::filesystem::path& file,
                                                      std::uint32_t rows, std::uint32_t cols,
                                                      const std::vector<std::uint16_t>& values) {
    std::vector<unsigned char> bytes;
    const auto put16 = [&bytes](std::uint32_t v) {
        bytes.push_back(static_cast<unsigned char>(v & 0xFFU));
        bytes.push_back(static_cast<unsigned char>((v >> 8U) & 0xFFU));
    };
    const auto put32 = [&put16](std::uint32_t v) {
        put16(v & 0xFFFFU);
        put16(v >> 16U);
    };
    constexpr std::uint16_t kShort = 3;
    constexpr std::uint16_t kLong = 4;
    constexpr std::uint32_t kEntries = 9;
    constexpr std::uint32_t kPixelsAt = 8 + 2 + kEntries * 12 + 4;
    const std::uint32_t pixel_bytes = rows * cols * 2;
    const auto entry = [&](std::uint16_t tag, std::uint16_t type, std::uint32_t value) {
        put16(tag);
        put16(type);
        put32(1);
        if (type == kShort) {
            put16(value);
            put16(0);
        } else {
            put32(value);
        }
    };
    bytes.push_back('I');
    bytes.push_back('I');
    put16(42);
    put32(8);  // first directory right after the header
    put16(kEntries);
    entry(TIFFTAG_IMAGEWIDTH, kLong, cols);
    entry(TIFFTAG_IMAGELENGTH, kLong, rows);
    entry(TIFFTAG_BITSPERSAMPLE, kShort, 16);
    entry(TIFFTAG_COMPRESSION, kShort, COMPRESSION_NONE);
    entry(TIFFTAG_PHOTOMETRIC, kShort, PHOTOMETRIC_MINISBLACK);
    entry(TIFFTAG_STRIPOFFSETS, kLong, kPixelsAt);
    entry(TIFFTAG_SAMPLESPERPIXEL, kShort, 1);
    entry(TIFFTAG_ROWSPERSTRIP, kLong, rows);
    entry(TIFFTAG_STRIPBYTECOUNTS, kLong, pixel_bytes);
    put32(0);  // no next directory
    for (const std::uint16_t v : values) {
        put16(v);
    }
    std::ofstream out(file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out || bytes.size() != kPixelsAt + pixel_bytes) {
        return ::testing::AssertionFailure() << "cannot write " << file;
    }
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult write_ge(
    const std::filesystem::path& file, std::size_t frames,
    const std::function<std::uint16_t(std::size_t, std::size_t, std::size_t)>& value) {
    constexpr std::size_t kSide = 2048;
    constexpr std::size_t kHeaderBytes = 8192;
    std::ofstream out(file, std::ios::binary);
    std::vector<char> header(kHeaderBytes, 'H');
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    std::vector<unsigned char> frame(kSide * kSide * 2);
    for (std::size_t f = 0; f < frames; ++f) {
        for (std::size_t r = 0; r < kSide; ++r) {
            for (std::size_t c = 0; c < kSide; ++c) {
                const std::uint16_t v = value(f, r, c);
                const std::size_t i = 2 * (r * kSide + c);
                frame[i] = static_cast<unsigned char>(v & 0xFFU);  // little-endian
                frame[i + 1] = static_cast<unsigned char>(v >> 8U);
            }
        }
        out.write(reinterpret_cast<const char*>(frame.data()),
                  static_cast<std::streamsize>(frame.size()));
    }
    out.close();
    if (!out) {
        return ::testing::AssertionFailure() << "cannot write " << file;
    }
    return ::testing::AssertionSuccess();
}

}  // namespace anisoflow::io::fixtures
