#include "mongo_uri.hpp"

#include <memory>

#include <mongoc/mongoc.h>

namespace levee {

std::string redact_mongo_uri(std::string_view uri) {
    const std::size_t scheme = uri.find("://");
    if (scheme == std::string_view::npos) {
        return std::string(uri);
    }
    const std::size_t start = scheme + 3;
    // The credentials end at the last '@' before the path or the options:
    // a password may itself hold '@' when it is not percent-encoded.
    std::size_t end = uri.find_first_of("/?", start);
    if (end == std::string_view::npos) {
        end = uri.size();
    }
    const std::size_t at = uri.substr(start, end - start).rfind('@');
    if (at == std::string_view::npos) {
        return std::string(uri);
    }
    const std::string_view userinfo = uri.substr(start, at);
    const std::size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
        return std::string(uri);
    }
    std::string out(uri.substr(0, start + colon + 1));
    out += "***";
    out += uri.substr(start + at);
    return out;
}

bool valid_mongo_uri(const std::string &uri, std::string &error) {
    bson_error_t err;
    std::unique_ptr<mongoc_uri_t, void (*)(mongoc_uri_t *)> parsed(mongoc_uri_new_with_error(uri.c_str(), &err),
                                                                   mongoc_uri_destroy);
    if (!parsed) {
        error = err.message;
        return false;
    }
    return true;
}

} // namespace levee
