#include "util/rate.h"

void rate_limiter_init(rate_limiter_t *l, uint32_t rate, uint32_t burst) {
    pthread_mutex_init(&l->_lock, NULL);
    l->_off = rate == 0;
    l->_interval_us = rate ? 1000000u / rate : 0;
    if (rate && !l->_interval_us)
        l->_interval_us = 1;
    l->_tolerance_us = l->_interval_us * (uint64_t)(burst ? burst - 1 : 0);
    l->_tat_us = 0;
}

void rate_limiter_free(rate_limiter_t *l) {
    pthread_mutex_destroy(&l->_lock);
}

bool rate_limiter_take(rate_limiter_t *l, uint64_t now_us, uint64_t *retry_us) {
    if (l->_off)
        return true;
    pthread_mutex_lock(&l->_lock);
    uint64_t tat = l->_tat_us > now_us ? l->_tat_us : now_us;
    bool ok = tat - now_us <= l->_tolerance_us;
    if (ok)
        l->_tat_us = tat + l->_interval_us;
    else if (retry_us)
        *retry_us = tat - now_us - l->_tolerance_us;
    pthread_mutex_unlock(&l->_lock);
    return ok;
}
