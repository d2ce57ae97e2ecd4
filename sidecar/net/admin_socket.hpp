// Where leveed's admin socket is when the settings do not say: beside the
// nginx socket, "-admin" added to its name (/run/levee/leveed.sock ->
// /run/levee/leveed-admin.sock). leveed and leveectl both derive it here.
#pragma once

#include <string>

namespace levee {

inline std::string default_admin_socket(const std::string &socket_path) {
    const auto slash = socket_path.rfind('/');
    const auto dot = socket_path.rfind('.');
    const bool has_ext = dot != std::string::npos && (slash == std::string::npos || dot > slash + 1);
    return has_ext ? socket_path.substr(0, dot) + "-admin" + socket_path.substr(dot) : socket_path + "-admin";
}

} // namespace levee
