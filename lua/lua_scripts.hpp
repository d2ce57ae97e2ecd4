// The Redis scripts of lua/, embedded at build time.
#pragma once

#include <string_view>
#include <vector>

namespace levee::lua {

struct Script {
    std::string_view name;   // file name without .lua
    std::string_view source;
};

const std::vector<Script> &scripts();
const Script *find(std::string_view name);

} // namespace levee::lua
