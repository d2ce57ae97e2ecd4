/*
 * The levee_status zone's counters as every part of the module sees them:
 * NULL when no location has levee_status (nothing is counted there then).
 * Set when the zone is initialised in the master; workers inherit it.
 */
#ifndef NGX_LEVEE_STATUS_BLOCK_H
#define NGX_LEVEE_STATUS_BLOCK_H

#include "core/status/status_block.hpp"

extern levee::status::Block  *ngx_levee_status_block;

#endif
