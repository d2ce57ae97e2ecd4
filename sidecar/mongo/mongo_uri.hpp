// A MongoDB URI as it may be logged: "mongodb://user:secret@host/db" keeps
// the user and hides the password, which URIs commonly carry.
#pragma once

#include <string>
#include <string_view>

namespace levee {

std::string redact_mongo_uri(std::string_view uri);

} // namespace levee
