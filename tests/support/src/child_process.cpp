#include "anisoflow/testing/child_process.hpp"

#include <array>
#include <cmath>
#include <fstream>
#include <regex>
#include <system_error>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>  // NOLINT(modernize-deprecated-headers): kill() and SIGKILL are POSIX
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "anisoflow/testing/cli_runner.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX, for posix_spawn

namespace anisoflow::testing {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

ChildProcess::ChildProcess(const std::string& binary, const std::vector<std::string>& args,
                           std::filesystem::path log, const std::map<std::string, std::string>& env)
    : log_(std::move(log)), command_(binary) {
    std::vector<std::string> argv_strings{binary};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : argv_strings) {
        argv.push_back(arg.data());
        command_ += " " + arg;
    }
    argv.push_back(nullptr);
    // The test's environment with `env` added (or replaced).
    std::vector<std::string> env_strings;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        const std::string text(*entry);
        if (!env.contains(text.substr(0, text.find('=')))) {
            env_strings.push_back(text);
        }
    }
    std::string assignments;
    for (const auto& [key, value] : env) {
        std::string assignment = key;
        assignment += '=';
        assignment += value;
        assignments += assignment;
        assignments += ' ';
        env_strings.push_back(std::move(assignment));
    }
    command_.insert(0, assignments);
    std::vector<char*> envp;
    envp.reserve(env_strings.size() + 1);
    for (std::string& entry : env_strings) {
        envp.push_back(entry.data());
    }
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    // Appended: a service restarted by a fault test keeps one log.
    posix_spawn_file_actions_addopen(&actions, 1, log_.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    const int spawned =
        posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
        ADD_FAILURE() << "cannot start " << command_ << ": "
                      << std::system_category().message(spawned);
        pid_ = -1;
    }
}

ChildProcess::~ChildProcess() {
    if (running()) {
        ::kill(pid_, SIGKILL);
        (void)wait_for(30s);
    }
}

void ChildProcess::signal(int number) const {
    if (running()) {
        ::kill(pid_, number);
    }
}

std::optional<int> ChildProcess::wait_for(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (running()) {
        int status = 0;
        const pid_t done = ::waitpid(pid_, &status, WNOHANG);
        if (done == pid_) {
            status_ = status;
        } else if (Clock::now() > deadline) {
            break;
        } else {
            std::this_thread::sleep_for(10ms);
        }
    }
    return status_;
}

int ChildProcess::terminate() {
    signal(SIGTERM);
    const auto status = wait_for(10s);
    return status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

void ChildProcess::kill_hard() {
    signal(SIGKILL);
    EXPECT_TRUE(wait_for(10s).has_value()) << "SIGKILL did not end " << command_;
}

std::string ChildProcess::log() const { return read_text(log_); }

std::string ChildProcess::describe() const { return command_ + "\n--- log:\n" + log(); }

bool wait_for_text(const std::filesystem::path& log, const std::string& text,
                   std::chrono::milliseconds patience, std::size_t from) {
    const auto deadline = Clock::now() + patience;
    do {
        const std::string content = read_text(log);
        if (content.size() > from && content.find(text, from) != std::string::npos) {
            return true;
        }
        std::this_thread::sleep_for(20ms);
    } while (Clock::now() < deadline);
    return false;
}

std::optional<std::uint16_t> logged_metrics_port(const ChildProcess& child,
                                                 std::chrono::milliseconds patience,
                                                 std::size_t from) {
    static const std::regex port(R"(metrics_port=(\d+))");
    const auto deadline = Clock::now() + patience;
    while (Clock::now() < deadline && child.running()) {
        const std::string log = child.log();
        std::optional<std::uint16_t> last;
        const std::string tail = log.size() > from ? log.substr(from) : std::string();
        for (std::sregex_iterator it(tail.begin(), tail.end(), port), end; it != end; ++it) {
            if ((*it)[1] != "0") {
                last = static_cast<std::uint16_t>(std::stoul((*it)[1]));
            }
        }
        if (last) {
            return last;
        }
        std::this_thread::sleep_for(20ms);
    }
    return std::nullopt;
}

std::string http_get(std::uint16_t port, const std::string& path) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return {};
    }
    timeval timeout{1, 0};  // a server that keeps the connection open does not hang the test
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string text;
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
        const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        if (::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
            std::array<char, 4096> buffer{};
            ssize_t got = 0;
            while ((got = ::recv(fd, buffer.data(), buffer.size(), 0)) > 0) {
                text.append(buffer.data(), static_cast<std::size_t>(got));
            }
        }
    }
    ::close(fd);
    return text;
}

double metric_value(const std::string& text, const std::string& series) {
    const auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) {
        return std::nan("");
    }
    return std::stod(text.substr(at + series.size() + 2));
}

std::uint64_t resident_bytes(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) {
            return std::stoull(line.substr(6)) * 1024U;  // the kernel writes kB
        }
    }
    return 0;
}

int open_fd_count(pid_t pid) {
    std::error_code error;
    std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", error);
    if (error) {
        return -1;
    }
    int count = 0;
    for (; it != std::filesystem::directory_iterator(); it.increment(error)) {
        ++count;
    }
    return count;
}

}  // namespace anisoflow::testing
