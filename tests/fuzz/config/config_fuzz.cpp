// libFuzzer target: leveed's configuration file, whatever it holds. The
// parser reports errors (each at a line of the text, or line 0) and never
// more than it read; the checks between settings run on what it accepted.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    const std::string text(reinterpret_cast<const char *>(data), size);
    const long lines = std::count(text.begin(), text.end(), '\n') + 1;
    levee::Config config;
    for (const levee::ConfigError &e : levee::parse_config(text, config)) {
        if (e.line < 0 || e.line > lines || e.message.empty()) {
            __builtin_trap();
        }
    }
    for (const levee::ConfigError &e : levee::validate_config(config)) {
        if (e.message.empty()) {
            __builtin_trap();
        }
    }
    return 0;
}
