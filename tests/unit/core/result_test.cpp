#include "anisoflow/core/result.hpp"

#include <gtest/gtest.h>

#include "anisoflow/core/logging.hpp"

namespace anisoflow {
namespace {

Result<int> parse_positive(int value) {
    if (value <= 0) {
        return fail(ErrorCode::kInvalidArgument, "value {} is not positive", value);
    }
    return value;
}

TEST(Result, CarriesValueOrMessage) {
    const auto good = parse_positive(3);
    ASSERT_TRUE(good.has_value());
    EXPECT_EQ(*good, 3);

    const auto bad = parse_positive(-2);
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(bad.error().message, "value -2 is not positive");
}

TEST(Result, ContextPrefixesTheMessage) {
    const Error error{ErrorCode::kNotFound, "dataset /entry/data/data is missing"};
    EXPECT_EQ(error.with_context("frames.h5").message,
              "frames.h5: dataset /entry/data/data is missing");
    EXPECT_EQ(to_string(ErrorCode::kCorrupt), "corrupt data");
}

TEST(Logging, RejectsUnknownLevelAndAcceptsKnownOnes) {
    EXPECT_FALSE(configure_logging("loud").has_value());
    EXPECT_TRUE(configure_logging("warn").has_value());
    EXPECT_TRUE(configure_logging("off").has_value());
}

}  // namespace
}  // namespace anisoflow
