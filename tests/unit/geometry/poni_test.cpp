// PONI parsing, the detector model table and format_poni (SPEC 1).

#include "anisoflow/geometry/poni.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "anisoflow/testing/test_paths.hpp"

namespace anisoflow::geometry {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::filesystem::path geometry_reference_dir() {
    return anisoflow::testing::reference_dir() / "geometry";
}

std::string read_text(const std::filesystem::path& path) {
    std::ifstream in(path);
    EXPECT_TRUE(in.good()) << "cannot open " << path;
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) {
        return {};
    }
    return text.substr(first, text.find_last_not_of(" \t\r") - first + 1);
}

// A valid PONI 2.1 (tilted.poni's numbers); one key per line, line numbers 1 to 10.
const std::vector<std::string>& base_lines() {
    static const std::vector<std::string> lines = {
        "poni_version: 2.1",
        "Detector: Detector",
        R"(Detector_config: {"pixel1": 0.0002, "pixel2": 0.0002, "max_shape": [2048, 2048], "orientation": 3})",
        "Distance: 0.3412",
        "Poni1: 0.2011",
        "Poni2: 0.2093",
        "Rot1: 0.013962634015954637",
        "Rot2: -0.008726646259971648",
        "Rot3: 0.0",
        "Wavelength: 1.2359e-11",
    };
    return lines;
}

std::string join(const std::vector<std::string>& lines) {
    std::string text;
    for (const std::string& line : lines) {
        text += line;
        text += '\n';
    }
    return text;
}

std::string base_poni() { return join(base_lines()); }

/// The base text with the line whose key is `key` replaced by `replacement` (removed if empty).
std::string poni_with(std::string_view key, std::string_view replacement) {
    std::vector<std::string> lines;
    bool found = false;
    for (const std::string& line : base_lines()) {
        if (line.starts_with(std::string(key) + ":")) {
            found = true;
            if (!replacement.empty()) {
                lines.emplace_back(replacement);
            }
        } else {
            lines.push_back(line);
        }
    }
    EXPECT_TRUE(found) << key;
    return join(lines);
}

std::string detector_config(std::string_view json) {
    return poni_with("Detector_config", std::string("Detector_config: ") + std::string(json));
}

/// The base text with another Detector line and Detector_config line (removed if empty).
std::string poni_with_detector(std::string_view detector_line, std::string_view config_line) {
    std::string text = poni_with("Detector_config", config_line);
    const std::string generic = "Detector: Detector";
    return text.replace(text.find(generic), generic.size(), detector_line);
}

PoniGeometry parse_ok(std::string_view text) {
    Result<PoniParseOutput> parsed = parse_poni(text);
    EXPECT_TRUE(parsed.has_value()) << (parsed ? "" : parsed.error().message) << "\n" << text;
    return parsed ? parsed->geometry : PoniGeometry{};
}

/// The error of a parse that must fail, with its code checked.
std::string parse_error(std::string_view text, ErrorCode code) {
    Result<PoniParseOutput> parsed = parse_poni(text);
    EXPECT_FALSE(parsed.has_value()) << "parsed although it should not:\n" << text;
    if (parsed) {
        return {};
    }
    EXPECT_EQ(parsed.error().code, code)
        << to_string(parsed.error().code) << ": " << parsed.error().message;
    return parsed.error().message;
}

void expect_same_geometry(const PoniGeometry& a, const PoniGeometry& b) {
    EXPECT_EQ(a.poni_version, b.poni_version);
    EXPECT_EQ(a.detector.name, b.detector.name);
    EXPECT_EQ(a.detector.pixel1_m, b.detector.pixel1_m);
    EXPECT_EQ(a.detector.pixel2_m, b.detector.pixel2_m);
    EXPECT_EQ(a.detector.max_shape, b.detector.max_shape);
    EXPECT_EQ(a.distance_m, b.distance_m);
    EXPECT_EQ(a.poni1_m, b.poni1_m);
    EXPECT_EQ(a.poni2_m, b.poni2_m);
    EXPECT_EQ(a.rot1_rad, b.rot1_rad);
    EXPECT_EQ(a.rot2_rad, b.rot2_rad);
    EXPECT_EQ(a.rot3_rad, b.rot3_rad);
    EXPECT_EQ(a.wavelength_m, b.wavelength_m);
}

// ---------------------------------------------------------------- reference files

TEST(PoniParser, ReadsEveryReferencePoniWithTheExactNumbersInTheFile) {
    std::size_t files = 0;
    for (const auto& item : std::filesystem::directory_iterator(geometry_reference_dir())) {
        if (item.path().extension() != ".poni") {
            continue;
        }
        ++files;
        SCOPED_TRACE(item.path().string());
        const std::string text = read_text(item.path());
        Result<PoniParseOutput> parsed = parse_poni(text);
        ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
        EXPECT_TRUE(parsed->warnings.empty());
        const PoniGeometry& g = parsed->geometry;
        const std::map<std::string, double> fields = {
            {"distance", g.distance_m},    {"poni1", g.poni1_m}, {"poni2", g.poni2_m},
            {"rot1", g.rot1_rad},          {"rot2", g.rot2_rad}, {"rot3", g.rot3_rad},
            {"wavelength", g.wavelength_m}};
        // Independent reading of the file: strtod of each value must give the same double.
        std::istringstream lines(text);
        std::string line;
        std::size_t numbers_checked = 0;
        while (std::getline(lines, line)) {
            const auto colon = line.find(':');
            if (line.starts_with("#") || colon == std::string::npos) {
                continue;
            }
            std::string key(trim(std::string_view(line).substr(0, colon)));
            for (char& c : key) {
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            }
            if (const auto it = fields.find(key); it != fields.end()) {
                const std::string value(trim(std::string_view(line).substr(colon + 1)));
                EXPECT_EQ(it->second, std::strtod(value.c_str(), nullptr)) << key;
                ++numbers_checked;
            }
        }
        EXPECT_EQ(numbers_checked, fields.size());
        EXPECT_EQ(g.detector.name, "Detector");
        EXPECT_EQ(g.detector.pixel1_m, 0.0002);
        EXPECT_EQ(g.detector.pixel2_m, 0.0002);
        EXPECT_EQ(g.detector.max_shape, (FrameShape{2048, 2048}));
    }
    EXPECT_GE(files, 4U) << "expected centred, rot3_offcentre, tilted and tilted_v21";
}

TEST(PoniParser, ReadsTiltedReferenceValues) {
    const PoniGeometry g = parse_ok(read_text(geometry_reference_dir() / "tilted.poni"));
    EXPECT_EQ(g.poni_version, "2");
    EXPECT_EQ(g.distance_m, 0.3412);
    EXPECT_EQ(g.poni1_m, 0.2011);
    EXPECT_EQ(g.poni2_m, 0.2093);
    EXPECT_EQ(g.rot1_rad, 0.013962634015954637);
    EXPECT_EQ(g.rot2_rad, -0.008726646259971648);
    EXPECT_EQ(g.rot3_rad, 0.0);
    EXPECT_EQ(g.wavelength_m, 1.2359e-11);
}

TEST(PoniParser, Version21WithOrientation3EqualsTheVersion2File) {
    PoniGeometry v2 = parse_ok(read_text(geometry_reference_dir() / "tilted.poni"));
    const PoniGeometry v21 = parse_ok(read_text(geometry_reference_dir() / "tilted_v21.poni"));
    EXPECT_EQ(v21.poni_version, "2.1");
    v2.poni_version = v21.poni_version;
    expect_same_geometry(v2, v21);
}

// ---------------------------------------------------------------- syntax

TEST(PoniParser, KeysAreCaseInsensitive) {
    const std::string text =
        "PONI_VERSION: 2\n"
        "detector: Detector\n"
        "DETECTOR_CONFIG: {\"pixel1\": 0.0001, \"pixel2\": 0.00015, \"max_shape\": [10, 20]}\n"
        "distance: 0.5\n"
        "PONI1: 0.01\n"
        "pOnI2: 0.02\n"
        "ROT1: 0.1\n"
        "rot2: 0.2\n"
        "Rot3: 0.3\n"
        "WAVELENGTH: 1e-10\n";
    const PoniGeometry g = parse_ok(text);
    EXPECT_EQ(g.poni_version, "2");
    EXPECT_EQ(g.distance_m, 0.5);
    EXPECT_EQ(g.poni1_m, 0.01);
    EXPECT_EQ(g.poni2_m, 0.02);
    EXPECT_EQ(g.rot1_rad, 0.1);
    EXPECT_EQ(g.rot2_rad, 0.2);
    EXPECT_EQ(g.rot3_rad, 0.3);
    EXPECT_EQ(g.wavelength_m, 1e-10);
    EXPECT_EQ(g.detector.pixel1_m, 0.0001);
    EXPECT_EQ(g.detector.pixel2_m, 0.00015);
    EXPECT_EQ(g.detector.max_shape, (FrameShape{10, 20}));
}

TEST(PoniParser, SplitsAtTheFirstColonSoJsonValuesKeepTheirColons) {
    // The Detector_config line holds many colons; only the first one separates the key.
    const PoniGeometry g = parse_ok(
        detector_config(R"({"pixel1": 7.5e-05, "pixel2": 0.000172, "max_shape": [3, 4]})"));
    EXPECT_EQ(g.detector.pixel1_m, 7.5e-05);
    EXPECT_EQ(g.detector.pixel2_m, 0.000172);
    EXPECT_EQ(g.detector.max_shape, (FrameShape{3, 4}));

    Result<PoniParseOutput> parsed = parse_poni(base_poni() + "Comment: a: b: c\n");
    ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
    ASSERT_EQ(parsed->warnings.size(), 1U);
    EXPECT_EQ(parsed->warnings[0], "unknown key 'Comment' on line 11 ignored");
}

TEST(PoniParser, SkipsCommentsBlankLinesAndSurroundingWhitespace) {
    const std::string text = "# a comment: with a colon\n\n   \n" +
                             poni_with("Distance", "  Distance  :   0.25   ") +
                             "   # indented comment\n";
    const PoniGeometry g = parse_ok(text);
    EXPECT_EQ(g.distance_m, 0.25);
}

TEST(PoniParser, ReadsWindowsLineEndings) {
    std::string text;
    for (const std::string& line : base_lines()) {
        text += line + "\r\n";
    }
    const PoniGeometry g = parse_ok(text);
    EXPECT_EQ(g.wavelength_m, 1.2359e-11);
    EXPECT_EQ(g.poni_version, "2.1");
}

TEST(PoniParser, RejectsLineWithoutColonNamingLineAndText) {
    std::vector<std::string> lines = base_lines();
    lines.insert(lines.begin() + 3, "Distance 0.3");  // becomes line 4
    const std::string message = parse_error(join(lines), ErrorCode::kParse);
    EXPECT_THAT(message, AllOf(HasSubstr("line 4"), HasSubstr("'Distance 0.3'")));
}

TEST(PoniParser, WarnsAboutUnknownKeysAndStillParses) {
    std::vector<std::string> lines = base_lines();
    lines.insert(lines.begin() + 6, "Foo: 12");  // line 7
    Result<PoniParseOutput> parsed = parse_poni(join(lines));
    ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
    ASSERT_EQ(parsed->warnings.size(), 1U);
    EXPECT_EQ(parsed->warnings[0], "unknown key 'Foo' on line 7 ignored");
    EXPECT_EQ(parsed->geometry.distance_m, 0.3412);
}

TEST(PoniParser, WarnsAboutUnknownDetectorConfigKeys) {
    Result<PoniParseOutput> parsed = parse_poni(detector_config(
        R"({"pixel1": 0.0002, "pixel2": 0.0002, "max_shape": [2048, 2048], "gain": 2})"));
    ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
    ASSERT_EQ(parsed->warnings.size(), 1U);
    EXPECT_THAT(parsed->warnings[0], AllOf(HasSubstr("'gain'"), HasSubstr("line 3")));
}

TEST(PoniParser, RejectsDuplicateKeyNamingBothLines) {
    const std::string message = parse_error(base_poni() + "DISTANCE: 0.5\n", ErrorCode::kParse);
    EXPECT_THAT(message, AllOf(HasSubstr("'Distance'"), HasSubstr("lines 4 and 11")));
}

// ---------------------------------------------------------------- required numbers

TEST(PoniParser, RejectsMissingDistance) {
    const std::string message = parse_error(poni_with("Distance", ""), ErrorCode::kNotFound);
    EXPECT_THAT(message, HasSubstr("Distance"));
}

TEST(PoniParser, RejectsEveryMissingRequiredKeyNamingIt) {
    for (const char* key : {"Distance", "Poni1", "Poni2", "Rot1", "Rot2", "Rot3", "Wavelength"}) {
        SCOPED_TRACE(key);
        const std::string message = parse_error(poni_with(key, ""), ErrorCode::kNotFound);
        EXPECT_THAT(message, HasSubstr(std::string("'") + key + "'"));
    }
}

TEST(PoniParser, RejectsNonNumericValueNamingKeyAndValue) {
    EXPECT_THAT(parse_error(poni_with("Poni1", "Poni1: twenty"), ErrorCode::kParse),
                AllOf(HasSubstr("Poni1"), HasSubstr("'twenty'"), HasSubstr("line 5")));
    // The whole value must be a number: trailing text is not silently dropped.
    EXPECT_THAT(parse_error(poni_with("Rot1", "Rot1: 0.1 rad"), ErrorCode::kParse),
                AllOf(HasSubstr("Rot1"), HasSubstr("'0.1 rad'")));
    EXPECT_THAT(parse_error(poni_with("Wavelength", "Wavelength:"), ErrorCode::kParse),
                HasSubstr("Wavelength"));
}

TEST(PoniParser, RejectsNonPositiveOrNonFiniteDistanceAndWavelength) {
    for (const char* value : {"0", "-0.3", "nan", "inf"}) {
        SCOPED_TRACE(value);
        EXPECT_THAT(parse_error(poni_with("Distance", std::string("Distance: ") + value),
                                ErrorCode::kInvalidArgument),
                    HasSubstr("Distance"));
        EXPECT_THAT(parse_error(poni_with("Wavelength", std::string("Wavelength: ") + value),
                                ErrorCode::kInvalidArgument),
                    HasSubstr("Wavelength"));
    }
}

TEST(PoniParser, RejectsNonFiniteRotationsButAcceptsNegativeOnes) {
    EXPECT_THAT(parse_error(poni_with("Rot3", "Rot3: nan"), ErrorCode::kInvalidArgument),
                HasSubstr("Rot3"));
    EXPECT_THAT(parse_error(poni_with("Rot2", "Rot2: -inf"), ErrorCode::kInvalidArgument),
                HasSubstr("Rot2"));
    EXPECT_EQ(parse_ok(poni_with("Rot3", "Rot3: -3.1")).rot3_rad, -3.1);
    EXPECT_EQ(parse_ok(poni_with("Poni1", "Poni1: -0.01")).poni1_m, -0.01);
}

TEST(PoniParser, RejectsNonPositivePixelSizesNamingTheKey) {
    EXPECT_THAT(
        parse_error(detector_config(R"({"pixel1": 0, "pixel2": 0.0002, "max_shape": [2, 2]})"),
                    ErrorCode::kInvalidArgument),
        HasSubstr("pixel1"));
    EXPECT_THAT(
        parse_error(detector_config(R"({"pixel1": 0.0002, "pixel2": -1, "max_shape": [2, 2]})"),
                    ErrorCode::kInvalidArgument),
        HasSubstr("pixel2"));
    EXPECT_THAT(parse_error("PixelSize1: -0.0001\nPixelSize2: 0.0001\n" +
                                poni_with_detector("Detector: Perkin", ""),
                            ErrorCode::kInvalidArgument),
                HasSubstr("PixelSize1"));
}

// ---------------------------------------------------------------- versions

TEST(PoniParser, AcceptsVersions1To3AndDefaultsToVersion1) {
    for (const char* version : {"1", "2", "2.1", "3"}) {
        SCOPED_TRACE(version);
        EXPECT_EQ(parse_ok(poni_with("poni_version", std::string("poni_version: ") + version))
                      .poni_version,
                  version);
    }
    EXPECT_EQ(parse_ok(poni_with("poni_version", "")).poni_version, "1");
}

TEST(PoniParser, RejectsUnknownVersionNamingIt) {
    EXPECT_THAT(parse_error(poni_with("poni_version", "poni_version: 4"), ErrorCode::kUnsupported),
                HasSubstr("'4'"));
    EXPECT_THAT(
        parse_error(poni_with("poni_version", "poni_version: 2.2"), ErrorCode::kUnsupported),
        HasSubstr("'2.2'"));
    EXPECT_THAT(
        parse_error(poni_with("poni_version", "poni_version: two"), ErrorCode::kUnsupported),
        HasSubstr("'two'"));
}

TEST(PoniParser, ReadsVersion1WithPixelSizes) {
    // pyFAI's historical layout: no poni_version, PixelSize1/2, SplineFile: None, and a model
    // name that supplies the shape the version-1 format cannot carry.
    const std::string text =
        "# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis\n"
        "PixelSize1: 0.0002\n"
        "PixelSize2: 0.0002\n"
        "Detector: Perkin\n"
        "Distance: 0.9\n"
        "Poni1: 0.2\n"
        "Poni2: 0.21\n"
        "Rot1: 0.001\n"
        "Rot2: -0.002\n"
        "Rot3: 0.0\n"
        "SplineFile: None\n"
        "Wavelength: 1.0e-11\n";
    Result<PoniParseOutput> parsed = parse_poni(text);
    ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
    EXPECT_TRUE(parsed->warnings.empty());
    const PoniGeometry& g = parsed->geometry;
    EXPECT_EQ(g.poni_version, "1");
    EXPECT_EQ(g.detector.name, "Perkin");
    EXPECT_EQ(g.detector.pixel1_m, 0.0002);
    EXPECT_EQ(g.detector.pixel2_m, 0.0002);
    EXPECT_EQ(g.detector.max_shape, (FrameShape{2048, 2048}));
    EXPECT_EQ(g.distance_m, 0.9);
    EXPECT_EQ(g.poni2_m, 0.21);
    EXPECT_EQ(g.rot2_rad, -0.002);
    EXPECT_EQ(g.wavelength_m, 1.0e-11);
}

TEST(PoniParser, RejectsVersion1PixelSizesWithoutAShapeNamingMaxShape) {
    // The base Detector is the generic "Detector": no table entry can supply the shape.
    const std::string message =
        parse_error("PixelSize1: 0.0001\nPixelSize2: 0.0001\n" + poni_with("Detector_config", ""),
                    ErrorCode::kNotFound);
    EXPECT_THAT(message, HasSubstr("max_shape"));
}

TEST(PoniParser, RejectsPixelSizeKeysThatDisagreeWithDetectorConfig) {
    EXPECT_THAT(parse_error(base_poni() + "PixelSize1: 0.0001\n", ErrorCode::kInvalidArgument),
                AllOf(HasSubstr("PixelSize1"), HasSubstr("pixel1")));
    // Agreeing duplicates are harmless.
    EXPECT_EQ(parse_ok(base_poni() + "PixelSize1: 0.0002\n").detector.pixel1_m, 0.0002);
}

TEST(PoniParser, RejectsSplineFileButAcceptsNoneOrEmpty) {
    EXPECT_THAT(
        parse_error(base_poni() + "SplineFile: /data/frelon.spline\n", ErrorCode::kUnsupported),
        AllOf(HasSubstr("spline"), HasSubstr("/data/frelon.spline")));
    EXPECT_EQ(parse_ok(base_poni() + "SplineFile: None\n").distance_m, 0.3412);
    EXPECT_EQ(parse_ok(base_poni() + "splinefile:\n").distance_m, 0.3412);
    EXPECT_THAT(
        parse_error(detector_config(R"({"pixel1": 0.0002, "pixel2": 0.0002, "max_shape": [2, 2], )"
                                    R"("splineFile": "a.spline"})"),
                    ErrorCode::kUnsupported),
        HasSubstr("a.spline"));
}

// ---------------------------------------------------------------- version 3 parallax

TEST(PoniParser, RefusesParallaxTrue) {
    for (const char* value : {"True", "true", "TRUE", "1"}) {
        SCOPED_TRACE(value);
        const std::string text =
            poni_with("poni_version", "poni_version: 3") + std::string("Parallax: ") + value + "\n";
        const std::string message = parse_error(text, ErrorCode::kUnsupported);
        EXPECT_THAT(message, AllOf(HasSubstr("parallax"), HasSubstr("not implement"),
                                   HasSubstr("Parallax: False"), HasSubstr("line 11")));
    }
}

TEST(PoniParser, AcceptsParallaxFalse) {
    const std::string text = poni_with("poni_version", "poni_version: 3") + "Parallax: False\n";
    Result<PoniParseOutput> parsed = parse_poni(text);
    ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
    EXPECT_TRUE(parsed->warnings.empty());
    EXPECT_EQ(parsed->geometry.poni_version, "3");
}

TEST(PoniParser, RejectsParallaxValueThatIsNeitherTrueNorFalse) {
    EXPECT_THAT(parse_error(base_poni() + "Parallax: maybe\n", ErrorCode::kParse),
                AllOf(HasSubstr("Parallax"), HasSubstr("'maybe'")));
}

// ---------------------------------------------------------------- orientation

TEST(PoniParser, AcceptsOrientation3AndAbsentOrientation) {
    expect_same_geometry(parse_ok(detector_config(
                             R"({"pixel1": 0.0002, "pixel2": 0.0002, "max_shape": [2048, 2048]})")),
                         parse_ok(base_poni()));
}

TEST(PoniParser, RefusesOrientations1To4Except3WithReexportAdvice) {
    for (const int orientation : {1, 2, 4}) {
        SCOPED_TRACE(orientation);
        const std::string message = parse_error(
            detector_config(R"({"pixel1": 0.0002, "pixel2": 0.0002, "max_shape": [2048, 2048], )"
                            R"("orientation": )" +
                            std::to_string(orientation) + "}"),
            ErrorCode::kUnsupported);
        EXPECT_THAT(message, AllOf(HasSubstr("orientation " + std::to_string(orientation)),
                                   HasSubstr("2026"), HasSubstr("re-export"),
                                   HasSubstr("orientation 3"), HasSubstr("line 3")));
    }
}

TEST(PoniParser, RejectsOrientationsOutsidePyfaiRange) {
    for (const char* orientation : {"0", "5", "-1", "3.5", "\"3\""}) {
        SCOPED_TRACE(orientation);
        const std::string message = parse_error(
            detector_config(std::string(R"({"pixel1": 0.0002, "pixel2": 0.0002, )"
                                        R"("max_shape": [2048, 2048], "orientation": )") +
                            orientation + "}"),
            ErrorCode::kInvalidArgument);
        EXPECT_THAT(message, HasSubstr("orientation"));
    }
}

// ---------------------------------------------------------------- detector resolution

TEST(PoniParser, ModelNameWithoutConfigUsesTheModelTable) {
    const PoniGeometry g = parse_ok(poni_with_detector("Detector: Perkin", ""));
    EXPECT_EQ(g.detector.name, "Perkin");
    EXPECT_EQ(g.detector.pixel1_m, 200e-6);
    EXPECT_EQ(g.detector.pixel2_m, 200e-6);
    EXPECT_EQ(g.detector.max_shape, (FrameShape{2048, 2048}));
}

TEST(PoniParser, PyfaiPerkinConfigWithoutMaxShapeTakesTheShapeFromTheTable) {
    // What pyFAI writes for its Perkin class: pixel sizes and orientation, no max_shape.
    const PoniGeometry g = parse_ok(poni_with_detector(
        "Detector: Perkin",
        R"(Detector_config: {"pixel1": 0.0002, "pixel2": 0.0002, "orientation": 3})"));
    EXPECT_EQ(g.detector.name, "Perkin");
    EXPECT_EQ(g.detector.pixel1_m, 0.0002);
    EXPECT_EQ(g.detector.max_shape, (FrameShape{2048, 2048}));
}

TEST(PoniParser, BinnedModelPixelsDivideTheModelShape) {
    const PoniGeometry g = parse_ok(poni_with_detector(
        "Detector: Perkin detector",
        R"(Detector_config: {"pixel1": 0.0004, "pixel2": 0.0004, "orientation": 3})"));
    EXPECT_EQ(g.detector.name, "Perkin");
    EXPECT_EQ(g.detector.pixel1_m, 0.0004);
    EXPECT_EQ(g.detector.max_shape, (FrameShape{1024, 1024}));

    EXPECT_THAT(
        parse_error(poni_with_detector("Detector: Perkin", R"(Detector_config: {"pixel1": 0.00015,)"
                                                           R"( "pixel2": 0.00015})"),
                    ErrorCode::kNotFound),
        AllOf(HasSubstr("max_shape"), HasSubstr("Perkin")));
}

TEST(PoniParser, RejectsABinningLargerThanTheModelNamingMaxShape) {
    // 1.72 m pixels on a Pilatus1M would be a binning of 10^4, leaving a detector of 0 rows;
    // such a file was accepted once and written back with max_shape [0, 0] (found by fuzzing).
    EXPECT_THAT(
        parse_error(poni_with_detector("Detector: Pilatus1M", R"(Detector_config: {"pixel1": 1.72,)"
                                                              R"( "pixel2": 0.000172})"),
                    ErrorCode::kNotFound),
        AllOf(HasSubstr("max_shape"), HasSubstr("Pilatus1M")));
    // The largest binning that leaves one row is still a binning.
    const PoniGeometry g = parse_ok(poni_with_detector(
        "Detector: Pilatus1M", R"(Detector_config: {"pixel1": 0.179396, "pixel2": 0.000172})"));
    EXPECT_EQ(g.detector.max_shape, (FrameShape{1, 981}));
}

TEST(PoniParser, ExplicitConfigWinsOverTheModelTable) {
    // A Pilatus1M written by pyFAI carries its own max_shape; the file's values are used and the
    // Detector value is kept as written.
    const PoniGeometry g = parse_ok(poni_with_detector(
        "Detector: Pilatus1M",
        R"(Detector_config: {"pixel1": 0.000172, "pixel2": 0.000172, "max_shape": [1043, 981], )"
        R"("orientation": 3})"));
    EXPECT_EQ(g.detector.name, "Pilatus1M");
    EXPECT_EQ(g.detector.pixel1_m, 172e-6);
    EXPECT_EQ(g.detector.max_shape, (FrameShape{1043, 981}));

    const PoniGeometry cropped = parse_ok(
        poni_with_detector("Detector: Pilatus1M", R"(Detector_config: {"max_shape": [100, 200]})"));
    EXPECT_EQ(cropped.detector.pixel1_m, 172e-6);
    EXPECT_EQ(cropped.detector.max_shape, (FrameShape{100, 200}));
}

TEST(PoniParser, RejectsUnknownModelWithoutPixelSizesListingKnownModels) {
    const std::string message = parse_error(
        poni_with_detector("Detector: Frelon9000", "Detector_config: {}"), ErrorCode::kNotFound);
    EXPECT_THAT(message,
                AllOf(HasSubstr("'Frelon9000'"), HasSubstr("Perkin"), HasSubstr("Pilatus1M"),
                      HasSubstr("Detector_config"), HasSubstr("pixel1")));
}

TEST(PoniParser, RejectsGenericDetectorWithoutMaxShape) {
    const std::string message =
        parse_error(detector_config(R"({"pixel1": 0.0002, "pixel2": 0.0002, "orientation": 3})"),
                    ErrorCode::kNotFound);
    EXPECT_THAT(message, AllOf(HasSubstr("max_shape"), HasSubstr("'Detector'")));
}

TEST(PoniParser, RejectsMalformedDetectorConfig) {
    EXPECT_THAT(parse_error(detector_config(R"({"pixel1": 0.0002,)"), ErrorCode::kParse),
                AllOf(HasSubstr("Detector_config"), HasSubstr("JSON"), HasSubstr("line 3")));
    EXPECT_THAT(parse_error(detector_config("[1, 2]"), ErrorCode::kParse),
                HasSubstr("Detector_config"));
    EXPECT_THAT(
        parse_error(detector_config(R"({"pixel1": "big", "pixel2": 0.0002, "max_shape": [2, 2]})"),
                    ErrorCode::kParse),
        HasSubstr("pixel1"));
    EXPECT_THAT(
        parse_error(detector_config(R"({"pixel1": 0.0002, "pixel2": 0.0002, "max_shape": [2048]})"),
                    ErrorCode::kInvalidArgument),
        HasSubstr("max_shape"));
    EXPECT_THAT(
        parse_error(detector_config(R"({"pixel1": 0.0002, "pixel2": 0.0002, "max_shape": [0, 5]})"),
                    ErrorCode::kInvalidArgument),
        HasSubstr("max_shape"));
    EXPECT_THAT(parse_error(detector_config(R"({"pixel1": 0.0002, "max_shape": [2, 2]})"),
                            ErrorCode::kNotFound),
                HasSubstr("pixel2"));
    EXPECT_THAT(parse_error(detector_config(R"({"pixel1": 0.0002, "pixel2": 0.0002,)"
                                            R"( "max_shape": [2, 2], "binning": [2, 2]})"),
                            ErrorCode::kUnsupported),
                HasSubstr("binning"));
}

// ---------------------------------------------------------------- model table

TEST(DetectorModelTable, FindsPyfaiNamesAndAliasesIgnoringCaseSpacesUnderscoresDashes) {
    for (const char* name : {"Perkin", "Perkin detector", "perkin_elmer", "PerkinElmer",
                             "PerkinElmer XRD 1621", "PERKIN-ELMER"}) {
        SCOPED_TRACE(name);
        Result<DetectorModel> model = find_detector_model(name);
        ASSERT_TRUE(model.has_value()) << model.error().message;
        EXPECT_EQ(model->name, "Perkin");
        EXPECT_EQ(model->pixel1_m, 200e-6);
        EXPECT_EQ(model->pixel2_m, 200e-6);
        EXPECT_EQ(model->max_shape, (FrameShape{2048, 2048}));
    }
    for (const char* name : {"Eiger2CdTe_1M", "Eiger2 CdTe 1M", "eiger2cdte1m", "EIGER2-CDTE-1M"}) {
        SCOPED_TRACE(name);
        Result<DetectorModel> model = find_detector_model(name);
        ASSERT_TRUE(model.has_value()) << model.error().message;
        EXPECT_EQ(model->name, "Eiger2CdTe_1M");
    }
}

TEST(DetectorModelTable, HoldsPyfaiPixelSizesAndShapes) {
    struct Expected {
        const char* name;
        double pixel_m;
        FrameShape shape;
    };
    // Values from pyFAI's src/pyFAI/detectors/_dectris.py and _others.py (see the ADR 0003).
    const Expected expected[] = {
        {"Pilatus300k", 172e-6, {619, 487}},       {"Pilatus1M", 172e-6, {1043, 981}},
        {"Pilatus2M", 172e-6, {1679, 1475}},       {"Pilatus6M", 172e-6, {2527, 2463}},
        {"Pilatus CdTe 300k", 172e-6, {619, 487}}, {"PilatusCdTe1M", 172e-6, {1043, 981}},
        {"Pilatus 2M CdTe", 172e-6, {1679, 1475}}, {"Eiger2 CdTe 1M", 75e-6, {1062, 1028}},
        {"Eiger2CdTe_4M", 75e-6, {2162, 2068}},    {"Eiger2CdTe_9M", 75e-6, {3262, 3108}},
        {"Eiger2CdTe_16M", 75e-6, {4362, 4148}},   {"Dexela 2923", 75e-6, {3888, 3072}},
        {"Pixium 4700", 308e-6, {955, 1240}},      {"Varex XRD 4343CT", 150e-6, {2880, 2880}},
    };
    for (const Expected& e : expected) {
        SCOPED_TRACE(e.name);
        Result<DetectorModel> model = find_detector_model(e.name);
        ASSERT_TRUE(model.has_value()) << model.error().message;
        EXPECT_EQ(model->pixel1_m, e.pixel_m);
        EXPECT_EQ(model->pixel2_m, e.pixel_m);
        EXPECT_EQ(model->max_shape, e.shape);
    }
}

TEST(DetectorModelTable, EveryCanonicalNameFindsItself) {
    const std::vector<std::string> names = known_detector_models();
    EXPECT_GE(names.size(), 15U);
    for (const std::string& name : names) {
        SCOPED_TRACE(name);
        Result<DetectorModel> model = find_detector_model(name);
        ASSERT_TRUE(model.has_value()) << model.error().message;
        EXPECT_EQ(model->name, name);
        EXPECT_GT(model->pixel1_m, 0.0);
        EXPECT_GT(model->max_shape.pixel_count(), 0U);
    }
}

TEST(DetectorModelTable, RejectsUnknownModelListingKnownOnes) {
    for (const char* name : {"Frelon", "Detector", "", "Pilatus"}) {
        SCOPED_TRACE(name);
        Result<DetectorModel> model = find_detector_model(name);
        ASSERT_FALSE(model.has_value());
        EXPECT_EQ(model.error().code, ErrorCode::kNotFound);
        EXPECT_THAT(model.error().message, AllOf(HasSubstr(std::string("'") + name + "'"),
                                                 HasSubstr("Perkin"), HasSubstr("Eiger2CdTe_16M")));
    }
}

// ---------------------------------------------------------------- format_poni

TEST(FormatPoni, WritesPoni21WithOrientation3) {
    const PoniGeometry g = parse_ok(base_poni());
    const std::string text = format_poni(g);
    EXPECT_THAT(text,
                AllOf(HasSubstr("poni_version: 2.1\n"), HasSubstr("Detector: Detector\n"),
                      HasSubstr("\"orientation\": 3"), HasSubstr("\"max_shape\": [2048, 2048]"),
                      HasSubstr("Distance: 0.3412\n"), HasSubstr("Rot1: 0.013962634015954637\n"),
                      HasSubstr("Wavelength: 1.2359e-11\n")));
}

TEST(FormatPoni, RoundTripsEveryGeometryExactly) {
    std::vector<PoniGeometry> geometries;
    for (const char* file : {"centred.poni", "rot3_offcentre.poni", "tilted.poni"}) {
        geometries.push_back(parse_ok(read_text(geometry_reference_dir() / file)));
    }
    // Numbers without a short decimal form, extremes, and a table detector.
    PoniGeometry awkward;
    awkward.detector = {"Pilatus CdTe 2M", 0.1 + 0.2, 1.0 / 3.0 * 1e-3, FrameShape{1679, 1475}};
    awkward.distance_m = std::nextafter(0.35, 1.0);
    awkward.poni1_m = -1e-300;
    awkward.poni2_m = std::numeric_limits<double>::denorm_min();
    awkward.rot1_rad = 3.141592653589793;
    awkward.rot2_rad = -2.0 / 3.0;
    awkward.rot3_rad = -0.0;
    awkward.wavelength_m = std::numeric_limits<double>::max();
    geometries.push_back(awkward);
    Result<PoniParseOutput> perkin = parse_poni(poni_with_detector("Detector: Perkin", ""));
    ASSERT_TRUE(perkin.has_value()) << perkin.error().message;
    geometries.push_back(perkin->geometry);

    for (PoniGeometry g : geometries) {
        g.poni_version = "2.1";  // format_poni always writes 2.1
        SCOPED_TRACE(format_poni(g));
        Result<PoniParseOutput> back = parse_poni(format_poni(g));
        ASSERT_TRUE(back.has_value()) << back.error().message;
        EXPECT_TRUE(back->warnings.empty());
        expect_same_geometry(back->geometry, g);
        EXPECT_EQ(std::signbit(back->geometry.rot3_rad), std::signbit(g.rot3_rad));
    }
}

}  // namespace
}  // namespace anisoflow::geometry
