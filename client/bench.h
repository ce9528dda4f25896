/* zappend-cli bench: the load generator (bench.c). */
#ifndef ZAPPEND_CLI_BENCH_H
#define ZAPPEND_CLI_BENCH_H

/*
 * Runs `zappend-cli bench` against the daemon at socket; argv[0] is "bench".
 * Returns the exit status: 0 no errors, 2 usage error, 3 any request failed.
 */
int bench_main(const char *socket, int argc, char **argv);

#endif
