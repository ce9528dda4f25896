#include "resp_parse.h"

int resp_int_line(const uint8_t *buf, size_t len, size_t *pos, char type, int64_t *v)
{
	size_t i = *pos + 1;
	bool neg;

	if (*pos >= len)
		return 0;
	if (buf[*pos] != type)
		return -1;
	neg = i < len && buf[i] == '-';
	i += neg;
	*v = 0;
	for (; i < len && buf[i] >= '0' && buf[i] <= '9'; i++) {
		if (*v > (INT64_MAX - (buf[i] - '0')) / 10)
			return -1;
		*v = *v * 10 + (buf[i] - '0');
	}
	if (i - *pos > RESP_NUM_LINE_MAX || (i < len && buf[i] != '\r'))
		return -1;
	if (i + 1 >= len)
		return 0;
	if (buf[i + 1] != '\n' || i == *pos + 1 + neg)
		return -1;
	if (neg)
		*v = -*v;
	*pos = i + 2;
	return 1;
}

static bool blank(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

size_t resp_words(const uint8_t *line, size_t len, const uint8_t **argv, size_t *argl, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < len;) {
		size_t j = i;

		while (j < len && !blank(line[j]))
			j++;
		if (j > i) {
			if (n < max) {
				argv[n] = line + i;
				argl[n] = j - i;
			}
			n++;
		}
		i = j + 1;
	}
	return n;
}

bool resp_u64(const uint8_t *p, size_t n, uint64_t *v)
{
	*v = 0;
	if (!n || n > 20)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9' || *v > (UINT64_MAX - (p[i] - '0')) / 10)
			return false;
		*v = *v * 10 + (p[i] - '0');
	}
	return true;
}

bool resp_match_prefix(const uint8_t *p, size_t n, size_t *plen, bool *exact)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '*' && i == n - 1) {
			*plen = i;
			*exact = false;
			return true;
		}
		if (p[i] == '*' || p[i] == '?' || p[i] == '[' || p[i] == '\\')
			return false;
	}
	*plen = n;
	*exact = true;
	return true;
}
