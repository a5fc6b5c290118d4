// TOML into Protobuf by reflection, on a test schema holding every field kind (loader_test.proto).

#include "anisoflow/runtime/config_loader.hpp"

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "loader_test.pb.h"

#include "anisoflow/testing/test_paths.hpp"

namespace anisoflow::runtime {
namespace {

namespace t = ::anisoflow::runtime_test::v1;

std::filesystem::path write_file(const std::string& name, const std::string& text) {
    auto path = testing::scratch_dir() / name;
    std::ofstream(path) << text;
    return path;
}

TEST(MergeToml, ReadsScalarsNestedTablesEnumsAndRepeatedFields) {
    const std::string text = R"(
offset = -3
big = 9000000000
count = 7
huge = 12
ratio = 0.25
scale = 2        # an integer is a fine float
enabled = true
label = "hello"
colour = "dark_blue"
names = ["a", "b"]
sizes = [1, 2, 3]
colours = ["red", "COLOUR_DARK_BLUE"]

[inner]
name = "in"
size_bytes = 4096
colour = "COLOUR_RED"

[[items]]
name = "first"

[[items]]
name = "second"
size_bytes = 2
)";
    t::Outer outer;
    auto merged = merge_toml(outer, text, "test.toml");
    ASSERT_TRUE(merged) << merged.error().message;
    EXPECT_EQ(outer.offset(), -3);
    EXPECT_EQ(outer.big(), 9000000000);
    EXPECT_EQ(outer.count(), 7U);
    EXPECT_EQ(outer.huge(), 12U);
    EXPECT_EQ(outer.ratio(), 0.25);
    EXPECT_EQ(outer.scale(), 2.0F);
    EXPECT_TRUE(outer.enabled());
    EXPECT_EQ(outer.label(), "hello");
    EXPECT_EQ(outer.colour(), t::COLOUR_DARK_BLUE);
    EXPECT_EQ(outer.inner().name(), "in");
    EXPECT_EQ(outer.inner().size_bytes(), 4096U);
    EXPECT_EQ(outer.inner().colour(), t::COLOUR_RED);
    ASSERT_EQ(outer.names_size(), 2);
    EXPECT_EQ(outer.names(1), "b");
    ASSERT_EQ(outer.sizes_size(), 3);
    EXPECT_EQ(outer.sizes(2), 3U);
    ASSERT_EQ(outer.colours_size(), 2);
    EXPECT_EQ(outer.colours(0), t::COLOUR_RED);
    EXPECT_EQ(outer.colours(1), t::COLOUR_DARK_BLUE);
    ASSERT_EQ(outer.items_size(), 2);
    EXPECT_EQ(outer.items(0).name(), "first");
    EXPECT_EQ(outer.items(1).size_bytes(), 2U);
}

TEST(MergeToml, LayersLeaveUnnamedFieldsAndReplaceRepeatedOnes) {
    t::Outer outer;
    ASSERT_TRUE(merge_toml(outer, "count = 1\nnames = [\"a\", \"b\"]\n[inner]\nname = \"x\"\n",
                           "base.toml"));
    ASSERT_TRUE(merge_toml(outer, "names = [\"c\"]\n[inner]\nsize_bytes = 5\n", "site.toml"));
    EXPECT_EQ(outer.count(), 1U);
    ASSERT_EQ(outer.names_size(), 1);
    EXPECT_EQ(outer.names(0), "c");
    EXPECT_EQ(outer.inner().name(), "x");
    EXPECT_EQ(outer.inner().size_bytes(), 5U);
}

TEST(MergeToml, RejectsAnUnknownKeyNamingFileLineAndPath) {
    t::Outer outer;
    auto merged = merge_toml(outer, "count = 1\n\n[inner]\nnmae = \"x\"\n", "ingest.toml");
    ASSERT_FALSE(merged);
    EXPECT_EQ(merged.error().code, ErrorCode::kParse);
    EXPECT_NE(merged.error().message.find("ingest.toml:4: inner.nmae: unknown key"),
              std::string::npos)
        << merged.error().message;
    // The message says what would have been accepted.
    EXPECT_NE(merged.error().message.find("name, size_bytes, colour"), std::string::npos);
}

TEST(MergeToml, ReportsEveryProblemOfAFileAtOnce) {
    t::Outer outer;
    auto merged = merge_toml(outer,
                             "count = \"seven\"\n"
                             "colour = \"green\"\n"
                             "extra = 1\n"
                             "sizes = [1, -2]\n"
                             "inner = 3\n",
                             "many.toml");
    ASSERT_FALSE(merged);
    const std::string& message = merged.error().message;
    EXPECT_NE(message.find("many.toml:1: count: expected a non-negative integer (uint32), found "
                           "a string"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("many.toml:2: colour: 'green' is not one of red, dark_blue"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("many.toml:3: extra: unknown key"), std::string::npos) << message;
    EXPECT_NE(message.find("many.toml:4: sizes[1]: -2 is out of range"), std::string::npos)
        << message;
    EXPECT_NE(message.find("many.toml:5: inner: expected a table"), std::string::npos) << message;
}

TEST(MergeToml, ChecksIntegerRangesAndTypes) {
    t::Outer outer;
    auto too_big = merge_toml(outer, "count = 4294967296\n", "r.toml");
    ASSERT_FALSE(too_big);
    EXPECT_NE(too_big.error().message.find("4294967296 is out of range"), std::string::npos);
    EXPECT_TRUE(merge_toml(outer, "count = 4294967295\n", "r.toml"));
    EXPECT_EQ(outer.count(), 4294967295U);
    EXPECT_FALSE(merge_toml(outer, "offset = 2147483648\n", "r.toml"));
    EXPECT_FALSE(merge_toml(outer, "huge = -1\n", "r.toml"));
    EXPECT_FALSE(merge_toml(outer, "enabled = 1\n", "r.toml"));
    EXPECT_FALSE(merge_toml(outer, "label = 5\n", "r.toml"));
    EXPECT_FALSE(merge_toml(outer, "ratio = \"0.5\"\n", "r.toml"));
    EXPECT_FALSE(merge_toml(outer, "names = \"a\"\n", "r.toml"));
    EXPECT_FALSE(merge_toml(outer, "colour = 1\n", "r.toml"));
    auto map = merge_toml(outer, "[tags]\na = \"b\"\n", "r.toml");
    ASSERT_FALSE(map);
    EXPECT_NE(map.error().message.find("map fields are not supported"), std::string::npos);
}

TEST(MergeToml, ReportsTomlSyntaxErrorsWithTheLine) {
    t::Outer outer;
    auto merged = merge_toml(outer, "count = 1\nlabel = \"unterminated\n", "bad.toml");
    ASSERT_FALSE(merged);
    EXPECT_EQ(merged.error().message.rfind("bad.toml:2: ", 0), 0U) << merged.error().message;
}

TEST(MergeTomlFile, AMissingFileIsAnErrorNamingIt) {
    t::Outer outer;
    const auto path = testing::scratch_dir() / "absent.toml";
    auto merged = merge_toml_file(outer, path);
    ASSERT_FALSE(merged);
    EXPECT_EQ(merged.error().code, ErrorCode::kNotFound);
    EXPECT_NE(merged.error().message.find(path.string()), std::string::npos);
}

TEST(LoadConfig, ReadsAFileAndNamesItInErrors) {
    const auto good = write_file("good.toml", "count = 3\n[inner]\ncolour = \"red\"\n");
    auto loaded = load_config<t::Outer>(good);
    ASSERT_TRUE(loaded) << loaded.error().message;
    EXPECT_EQ(loaded->count(), 3U);
    EXPECT_EQ(loaded->inner().colour(), t::COLOUR_RED);

    const auto bad = write_file("bad.toml", "[inner]\nsize_byte = 3\n");
    auto failed = load_config<t::Outer>(bad);
    ASSERT_FALSE(failed);
    EXPECT_NE(failed.error().message.find(bad.string() + ":2: inner.size_byte: unknown key"),
              std::string::npos)
        << failed.error().message;
}

TEST(ApplyOverride, SetsAnyFieldByItsPathWithTheFieldsType) {
    t::Outer outer;
    ASSERT_TRUE(apply_override(outer, "count=12"));
    ASSERT_TRUE(apply_override(outer, "inner.name=tcp://host:5555"));  // a bare word is a string
    ASSERT_TRUE(apply_override(outer, "inner.colour=dark_blue"));
    ASSERT_TRUE(apply_override(outer, "label=\"quoted = fine\""));
    ASSERT_TRUE(apply_override(outer, "ratio=1e-3"));
    ASSERT_TRUE(apply_override(outer, "enabled=true"));
    ASSERT_TRUE(apply_override(outer, "names=[\"x\", \"y\"]"));
    ASSERT_TRUE(apply_override(outer, "label=a=b"));  // only the first = splits
    EXPECT_EQ(outer.count(), 12U);
    EXPECT_EQ(outer.inner().name(), "tcp://host:5555");
    EXPECT_EQ(outer.inner().colour(), t::COLOUR_DARK_BLUE);
    EXPECT_EQ(outer.ratio(), 1e-3);
    EXPECT_TRUE(outer.enabled());
    ASSERT_EQ(outer.names_size(), 2);
    EXPECT_EQ(outer.names(1), "y");
    EXPECT_EQ(outer.label(), "a=b");
}

TEST(ApplyOverride, RejectsUnknownPathsWrongTypesAndTables) {
    t::Outer outer;
    auto unknown = apply_override(outer, "inner.nmae=x");
    ASSERT_FALSE(unknown);
    EXPECT_NE(unknown.error().message.find("--set inner.nmae=x: inner.nmae: unknown key"),
              std::string::npos)
        << unknown.error().message;
    auto wrong = apply_override(outer, "count=many");
    ASSERT_FALSE(wrong);
    EXPECT_NE(wrong.error().message.find("count:"), std::string::npos) << wrong.error().message;
    EXPECT_FALSE(apply_override(outer, "count=-1"));
    EXPECT_FALSE(apply_override(outer, "colour=green"));
    auto table = apply_override(outer, "inner=3");
    ASSERT_FALSE(table);
    EXPECT_NE(table.error().message.find("is a table"), std::string::npos);
    EXPECT_FALSE(apply_override(outer, "count.deeper=1"));
    EXPECT_FALSE(apply_override(outer, "no_equals_sign"));
    EXPECT_FALSE(apply_override(outer, "=1"));
    EXPECT_EQ(outer.count(), 0U);  // failures leave the field alone
}

// Found by fuzz_config_toml (docs/fuzzing.md): a bare word is taken as it came, so bytes that are
// not UTF-8 reached a Protobuf string field, which peers then fail to parse and to_toml() prints
// as a file that does not load. They are refused, naming the key.
TEST(ApplyOverride, RejectsABareWordThatIsNotUtf8) {
    t::Outer outer;
    auto invalid = apply_override(outer, "label=[\"Z\x8e\xdd\xd3\xdf\xdd\xbc\x8a\xdd]");
    ASSERT_FALSE(invalid);
    EXPECT_NE(invalid.error().message.find("label: the value is not valid UTF-8 text"),
              std::string::npos)
        << invalid.error().message;
    EXPECT_FALSE(apply_override(outer, "label=\xc0\xaf"));          // overlong '/'
    EXPECT_FALSE(apply_override(outer, "label=\xed\xa0\x80"));      // a UTF-16 surrogate
    EXPECT_FALSE(apply_override(outer, "label=\xf4\x90\x80\x80"));  // past U+10FFFF
    EXPECT_FALSE(apply_override(outer, "label=ab\xe2\x82"));        // cut short
    EXPECT_TRUE(outer.label().empty());
    ASSERT_TRUE(apply_override(outer,
                               "label=Zr\xe2\x82\x85\xe2\x82\x82"
                               "Cu \xf0\x9f\x94\xac"));
    EXPECT_EQ(outer.label(),
              "Zr\xe2\x82\x85\xe2\x82\x82"
              "Cu \xf0\x9f\x94\xac");
    t::Outer back;
    ASSERT_TRUE(merge_toml(back, to_toml(outer), "printed"));
    EXPECT_EQ(back.label(), outer.label());
}

TEST(ToToml, PrintsEveryFieldSoThatItLoadsBackToTheSameMessage) {
    t::Outer outer;
    outer.set_offset(-1);
    outer.set_huge(5);
    outer.set_ratio(0.125);
    outer.set_label("a \"quoted\" label");
    outer.set_colour(t::COLOUR_DARK_BLUE);
    outer.mutable_inner()->set_size_bytes(9);
    outer.add_names("n");
    outer.add_colours(t::COLOUR_RED);
    outer.add_items()->set_name("item");
    const std::string text = to_toml(outer);
    EXPECT_NE(text.find("colour = \"dark_blue\""), std::string::npos) << text;
    EXPECT_NE(text.find("enabled = false"), std::string::npos) << text;  // zero values too

    t::Outer back;
    auto merged = merge_toml(back, text, "printed");
    ASSERT_TRUE(merged) << merged.error().message << "\n" << text;
    EXPECT_EQ(back.SerializeAsString(), outer.SerializeAsString()) << text;
}

// Found by fuzz_config_toml (docs/fuzzing.md): toml++ printed a string holding a newline as a
// multi-line """ string, and TOML drops a newline right after the opening quotes, so a value
// that started with one came back without it. to_toml() writes "\n" escapes instead.
TEST(ToToml, AStringStartingWithANewlineLoadsBackUnchanged) {
    t::Outer outer;
    ASSERT_TRUE(apply_override(outer, "label=\npolarization_factor  =0.99\n"));
    ASSERT_EQ(outer.label(), "\npolarization_factor  =0.99\n");
    const std::string text = to_toml(outer);
    EXPECT_EQ(text.find("\"\"\""), std::string::npos) << text;
    t::Outer back;
    auto merged = merge_toml(back, text, "printed");
    ASSERT_TRUE(merged) << merged.error().message << "\n" << text;
    EXPECT_EQ(back.label(), outer.label()) << text;
}

}  // namespace
}  // namespace anisoflow::runtime
