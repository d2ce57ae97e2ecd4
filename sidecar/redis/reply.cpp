#include "reply.hpp"

#include <hiredis/hiredis.h>

namespace levee::redis {

namespace {

// hiredis keeps its reply constructors private; a default reader points at
// them, and they live as long as the library.
const redisReplyObjectFunctions &hiredis_functions() {
    static const redisReplyObjectFunctions fns = [] {
        redisReader *r = redisReaderCreate();
        const redisReplyObjectFunctions copy = *r->fn;
        redisReaderFree(r);
        return copy;
    }();
    return fns;
}

void *create_bounded_array(const redisReadTask *task, int elements) {
    if (elements < 0 || elements > kMaxReplyElements) {
        return nullptr; // the reader reports it as a protocol error
    }
    return hiredis_functions().createArray(task, elements);
}

redisReplyObjectFunctions bounded_functions() {
    redisReplyObjectFunctions fns = hiredis_functions();
    fns.createArray = &create_bounded_array;
    return fns;
}

} // namespace

redisReader *new_reply_reader() {
    // hiredis keeps the pointer, never writes through it.
    static redisReplyObjectFunctions fns = bounded_functions();
    return redisReaderCreateWithFunctions(&fns);
}

Reply Reply::from_hiredis(const redisReply &r) {
    Reply out;
    switch (r.type) {
    case REDIS_REPLY_STRING:
        out.type = Type::String;
        out.str.assign(r.str, r.len);
        break;
    case REDIS_REPLY_STATUS:
        out.type = Type::Status;
        out.str.assign(r.str, r.len);
        break;
    case REDIS_REPLY_ERROR:
        out.type = Type::Error;
        out.str.assign(r.str, r.len);
        break;
    case REDIS_REPLY_INTEGER:
        out.type = Type::Integer;
        out.integer = r.integer;
        break;
    case REDIS_REPLY_ARRAY:
        out.type = Type::Array;
        out.elements.reserve(r.elements);
        for (size_t i = 0; i < r.elements; ++i) {
            out.elements.push_back(from_hiredis(*r.element[i]));
        }
        break;
    default: out.type = Type::Nil; break;
    }
    return out;
}

Reply Reply::error(std::string message) {
    Reply out;
    out.type = Type::Error;
    out.str = std::move(message);
    return out;
}

Reply Reply::status(std::string message) {
    Reply out;
    out.type = Type::Status;
    out.str = std::move(message);
    return out;
}

bool Reply::error_is(std::string_view prefix) const {
    if (type != Type::Error || str.size() < prefix.size() || str.compare(0, prefix.size(), prefix) != 0) {
        return false;
    }
    return str.size() == prefix.size() || str[prefix.size()] == ' ';
}

} // namespace levee::redis
