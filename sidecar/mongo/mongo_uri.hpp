// A MongoDB URI as it may be logged: "mongodb://user:secret@host/db" keeps
// the user and hides the password, which URIs commonly carry.
#pragma once

#include <string>
#include <string_view>

namespace levee {

std::string redact_mongo_uri(std::string_view uri);

// Whether libmongoc accepts the URI, as leveed's start would parse it;
// `error` is libmongoc's reason, which never quotes a password.
bool valid_mongo_uri(const std::string &uri, std::string &error);

} // namespace levee
