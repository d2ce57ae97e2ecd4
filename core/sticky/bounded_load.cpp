#include "core/sticky/bounded_load.hpp"

namespace levee::sticky {

bool parse_load_factor(const char *s, uint64_t len, uint32_t *factor_milli) {
    uint64_t whole = 0, frac = 0;
    uint64_t i = 0, digits = 0, frac_digits = 0;

    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
        whole = whole * 10 + uint64_t(s[i] - '0');
        if (whole > 100)
            return false;
    }
    if (digits == 0)
        return false;
    if (i < len && s[i] == '.') {
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, frac_digits++) {
            if (frac_digits == 3)
                return false;
            frac = frac * 10 + uint64_t(s[i] - '0');
        }
        if (frac_digits == 0)
            return false;
    }
    if (i != len)
        return false;
    for (; frac_digits < 3; frac_digits++)
        frac *= 10;

    uint64_t v = whole * kLoadFactorScale + frac;
    if (v < kLoadFactorScale || v > 100 * kLoadFactorScale)
        return false;
    *factor_milli = static_cast<uint32_t>(v);
    return true;
}

} // namespace levee::sticky
