#include "script.hpp"

#include <openssl/sha.h>

namespace levee::redis {

std::string sha1_hex(std::string_view data) {
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char *>(data.data()), data.size(), digest);
    static const char hex[] = "0123456789abcdef";
    std::string out(2 * SHA_DIGEST_LENGTH, '0');
    for (size_t i = 0; i < SHA_DIGEST_LENGTH; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0xf];
    }
    return out;
}

Script::Script(ClusterClient &client, const lua::Script &script)
    : client_(client), source_(script.source), sha1_(sha1_hex(source_)) {
    client_.register_script(sha1_, source_);
}

bool Script::run(std::vector<std::string> keys, std::vector<std::string> args, ClusterClient::Callback cb) {
    if (keys.empty()) {
        return false;
    }
    std::vector<std::string> argv;
    argv.reserve(3 + keys.size() + args.size());
    argv.push_back("EVALSHA");
    argv.push_back(sha1_);
    argv.push_back(std::to_string(keys.size()));
    for (auto &k : keys) {
        argv.push_back(std::move(k));
    }
    for (auto &a : args) {
        argv.push_back(std::move(a));
    }
    const std::string route = argv[3];
    return client_.command(route, std::move(argv), std::move(cb));
}

} // namespace levee::redis
