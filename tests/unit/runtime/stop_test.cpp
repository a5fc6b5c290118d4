// Stop requests: by hand, by SIGTERM/SIGINT raised in process, and by a failing stage.

#include "anisoflow/runtime/stop.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>

#include <gtest/gtest.h>
#include <poll.h>

#include "anisoflow/runtime/stage.hpp"

namespace anisoflow::runtime {
namespace {

using std::chrono::milliseconds;

StopSource make_source() {
    auto source = StopSource::create();
    EXPECT_TRUE(source);
    return *source;
}

bool readable(int fd) {
    pollfd item{fd, POLLIN, 0};
    return ::poll(&item, 1, 0) == 1 && (item.revents & POLLIN) != 0;
}

TEST(StopSource, RequestReachesEveryTokenAndItsFd) {
    const StopSource source = make_source();
    const StopToken token = source.token();
    EXPECT_FALSE(token.stop_requested());
    EXPECT_FALSE(readable(token.fd()));
    EXPECT_FALSE(token.wait_for(milliseconds(1)));
    source.request_stop();
    source.request_stop();  // idempotent
    EXPECT_TRUE(token.stop_requested());
    EXPECT_TRUE(source.stop_requested());
    EXPECT_TRUE(readable(token.fd()));
    EXPECT_TRUE(readable(token.fd()));  // stays readable for every poller
}

TEST(StopSource, WaitForWakesAsSoonAsAnotherThreadRequestsStop) {
    const StopSource source = make_source();
    const auto start = std::chrono::steady_clock::now();
    std::thread stopper([&] {
        std::this_thread::sleep_for(milliseconds(20));
        source.request_stop();
    });
    EXPECT_TRUE(source.token().wait_for(milliseconds(10000)));
    stopper.join();
    EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(5000));
}

TEST(StopSignals, SigtermRaisedInProcessRequestsStop) {
    const StopSource source = make_source();
    {
        auto signals = StopSignals::install(source);
        ASSERT_TRUE(signals) << signals.error().message;
        EXPECT_EQ(StopSignals::received_signal(), 0);
        ASSERT_EQ(std::raise(SIGTERM), 0);
        EXPECT_TRUE(source.stop_requested());
        EXPECT_TRUE(readable(source.token().fd()));
        EXPECT_EQ(StopSignals::received_signal(), SIGTERM);
    }
}

TEST(StopSignals, SigintToo_AndPreviousHandlersComeBack) {
    struct sigaction before {};
    ASSERT_EQ(::sigaction(SIGINT, nullptr, &before), 0);
    const StopSource source = make_source();
    {
        auto signals = StopSignals::install(source);
        ASSERT_TRUE(signals);
        auto second = StopSignals::install(source);
        EXPECT_FALSE(second);  // one per process
        ASSERT_EQ(std::raise(SIGINT), 0);
        EXPECT_TRUE(source.stop_requested());
        EXPECT_EQ(StopSignals::received_signal(), SIGINT);
    }
    struct sigaction after {};
    ASSERT_EQ(::sigaction(SIGINT, nullptr, &after), 0);
    EXPECT_EQ(after.sa_handler, before.sa_handler);
    // Installable again once the first is gone.
    const StopSource again = make_source();
    auto signals = StopSignals::install(again);
    ASSERT_TRUE(signals);
    EXPECT_FALSE(again.stop_requested());
}

TEST(StageThread, AFailingStageStopsItsSiblingsAndJoinReportsIt) {
    const StopSource source = make_source();
    std::atomic<bool> sibling_saw_stop{false};
    StageThread sibling("receive", source, [&](const StopToken& stop) -> Result<void> {
        while (!stop.wait_for(milliseconds(1000))) {
        }
        sibling_saw_stop = true;
        return {};
    });
    StageThread failing("integrate", source, [](const StopToken&) -> Result<void> {
        return fail(ErrorCode::kCorrupt, "cake has NaN");
    });
    auto failed = failing.join();
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().message, "stage integrate: cake has NaN");
    EXPECT_TRUE(sibling.join());
    EXPECT_TRUE(sibling_saw_stop);
    EXPECT_TRUE(source.stop_requested());
}

TEST(StageThread, AThrowingStageIsAnErrorNotATerminate) {
    const StopSource source = make_source();
    StageThread stage("send", source,
                      [](const StopToken&) -> Result<void> { throw std::runtime_error("boom"); });
    auto joined = stage.join();
    ASSERT_FALSE(joined);
    EXPECT_NE(joined.error().message.find("boom"), std::string::npos);
    EXPECT_TRUE(source.stop_requested());
}

TEST(StageThread, DestructionStopsAndJoins) {
    const StopSource source = make_source();
    std::atomic<bool> finished{false};
    {
        StageThread stage("loop", source, [&](const StopToken& stop) -> Result<void> {
            while (!stop.wait_for(milliseconds(1000))) {
            }
            finished = true;
            return {};
        });
    }
    EXPECT_TRUE(finished);
    EXPECT_TRUE(source.stop_requested());
}

}  // namespace
}  // namespace anisoflow::runtime
