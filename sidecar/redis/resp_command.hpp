// A command in RESP, the form it takes on the wire: "*<n>\r\n" then
// "$<len>\r\n<arg>\r\n" per argument. leveed formats commands itself, in one
// pass into one buffer: hiredis's formatter goes through a printf-like
// sdscatfmt per argument, and presence batches carry thousands of arguments.
#pragma once

#include <string>
#include <vector>

namespace levee::redis {

std::string resp_command(const std::vector<std::string> &argv);

} // namespace levee::redis
