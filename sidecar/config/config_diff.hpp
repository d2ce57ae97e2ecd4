// leveed's settings as an operator sees them: every setting with its value
// (secrets masked) and whether it is the default (--check-config), and what
// a reload changed, split into what applies in place and what needs a restart.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace levee {

struct ShownSetting {
    std::string key;
    std::string value; // "-" when unset; secrets masked
    bool is_default;   // equal to the built-in default
};

std::vector<ShownSetting> effective_settings(const Config &config);
// One "key value" line per setting, "# default" after the defaults' values.
std::string format_effective_settings(const Config &config);

struct ConfigChanges {
    std::vector<std::string> live;    // applied without dropping connections
    std::vector<std::string> restart; // kept at the running value until a restart
};

ConfigChanges diff_config(const Config &running, const Config &next);

// `running` with every setting that changes in place taken from `next`.
Config merge_live(const Config &running, const Config &next);

// Keys this file knows how to show: a unit test holds it equal to setting_names().
std::vector<std::string> shown_setting_names();

} // namespace levee
