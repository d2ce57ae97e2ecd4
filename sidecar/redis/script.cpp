#include "script.hpp"

#include <cstdint>
#include <cstring>
#include <memory>

#include "lua_scripts.hpp"

namespace levee::redis {

std::string sha1_hex(std::string_view data) {
    std::uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    std::string msg(data);
    const std::uint64_t bit_len = static_cast<std::uint64_t>(data.size()) * 8;
    msg.push_back(static_cast<char>(0x80));
    while (msg.size() % 64 != 56) {
        msg.push_back('\0');
    }
    for (int i = 7; i >= 0; i--) {
        msg.push_back(static_cast<char>((bit_len >> (i * 8)) & 0xff));
    }
    auto rol = [](std::uint32_t v, int n) { return (v << n) | (v >> (32 - n)); };
    for (std::size_t chunk = 0; chunk < msg.size(); chunk += 64) {
        std::uint32_t w[80];
        for (int i = 0; i < 16; i++) {
            const auto *p = reinterpret_cast<const unsigned char *>(msg.data() + chunk + i * 4);
            w[i] = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
        }
        for (int i = 16; i < 80; i++) {
            w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        }
        std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            std::uint32_t f, k;
            if (i < 20) {
                f = (b & c) | (~b & d);
                k = 0x5A827999;
            } else if (i < 40) {
                f = b ^ c ^ d;
                k = 0x6ED9EBA1;
            } else if (i < 60) {
                f = (b & c) | (b & d) | (c & d);
                k = 0x8F1BBCDC;
            } else {
                f = b ^ c ^ d;
                k = 0xCA62C1D6;
            }
            const std::uint32_t t = rol(a, 5) + f + e + k + w[i];
            e = d;
            d = c;
            c = rol(b, 30);
            b = a;
            a = t;
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
        h[4] += e;
    }
    char out[41];
    for (int i = 0; i < 5; i++) {
        std::snprintf(out + i * 8, 9, "%08x", h[i]);
    }
    return std::string(out, 40);
}

Script::Script(ClusterClient &client, std::string_view name) : client_(client) {
    if (const lua::Script *s = lua::find(name)) {
        source_ = std::string(s->source);
        sha1_ = sha1_hex(source_);
        client_.register_script(sha1_, source_);
    }
}

bool Script::run(std::vector<std::string> keys, std::vector<std::string> args, ClusterClient::Callback cb) {
    if (keys.empty() || !valid()) {
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
