/* qtool inspect for .qmod files: layout, per-layer bits and bytes. */
#include "cli.h"

int cmd_inspect_qmod(const char *path, int json)
{
	(void)json;
	return cli_usage_error("inspect", "%s: .qmod inspection is not available yet", path);
}
