/*
 * cpu.h - internal: how many CPUs the pool should use (see pp_cpu_count).
 * The parsing is split from the system reads so tests can drive it.
 */
#ifndef PP_CPU_H
#define PP_CPU_H

/*
 * pp__cpu_count_from - the CPU count from already-read inputs.
 *   cpu_max_text: the contents of a cgroup v2 cpu.max file ("max 100000",
 *                 "150000 100000", ...), or NULL when there is none. "max",
 *                 an empty or garbled text means no cap; otherwise the cap
 *                 is ceil(quota / period) (period 100000 when missing).
 *   affinity:     CPUs in the affinity mask (values < 1 count as 1).
 *   env:          the value of PROCPOOL_CPUS, or NULL. A positive decimal
 *                 integer (surrounding blanks allowed) caps the count;
 *                 anything else is ignored.
 * Returns the smallest of the three, never less than 1.
 */
int pp__cpu_count_from(const char *cpu_max_text, int affinity, const char *env);

/*
 * pp__cpu_max_cap - the cap a cpu.max text sets: ceil(quota / period), or 0
 * for no cap ("max", NULL, empty or unparsable text).
 */
int pp__cpu_max_cap(const char *cpu_max_text);

#endif /* PP_CPU_H */
