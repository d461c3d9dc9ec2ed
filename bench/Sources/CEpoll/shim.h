#ifndef AFTERSALES_BENCH_CEPOLL_H
#define AFTERSALES_BENCH_CEPOLL_H
// epoll for the benchmark driver: Swift's Glibc module does not carry <sys/epoll.h>.
#include <sys/epoll.h>
#endif
