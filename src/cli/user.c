/*
 * user.c - `tessera user add NAME [--admin]`: give a user a new API token
 * (DESIGN §3). The token goes to stdout alone, so that scripts can capture
 * it (TOKEN=$(tessera user add alice)); everything for people goes to
 * stderr. Only the token's SHA-256 is stored, so it is shown once: a lost
 * token is replaced by running the command again, which also revokes it.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "http/auth.h"
#include "store/store.h"
#include "util/config.h"
#include "util/util.h"

static const char *const user_config_flags[] = {"--db", "--state-dir", NULL};
static const char *const user_bool_flags[] = {"--admin", NULL};

static const cli_spec user_spec = {
    .name = "user",
    .usage = "usage: tessera user add NAME [--admin] [options]\n"
             "\n"
             "Creates user NAME with a new API token, or gives an existing user a new one\n"
             "(the old token stops working at once). The token is printed on stdout, once:\n"
             "only its SHA-256 hash is stored. Clients send it as\n"
             "Authorization: Bearer <token> (tessera commands read it from TESSERA_TOKEN).\n"
             "NAME is 1-128 characters of A-Z a-z 0-9 . _ @ -\n"
             "\n"
             "options (each also read from the TESSERA_* variable and ./.env):\n"
             "  --admin           the user is an administrator (without it: not one)\n"
             "  --db PATH         SQLite database (TESSERA_DB; default STATE_DIR/tessera.db)\n"
             "  --state-dir DIR   state directory (TESSERA_STATE_DIR; ./var)\n",
    .config_flags = user_config_flags,
    .bool_flags = user_bool_flags,
    .min_positional = 1,
    .max_positional = 2,
};

/* Checks "add NAME": CLI_OK, or CLI_USAGE after saying what is wrong. */
static int check_args(const cli_args *a) {
    if (strcmp(a->positional[0], "add") != 0) {
        fprintf(stderr, "tessera user: unknown action \"%s\": the only one is add "
                        "(see tessera user --help)\n",
                a->positional[0]);
        return CLI_USAGE;
    }
    if (a->n_positional < 2) {
        fprintf(stderr, "tessera user add: missing NAME (see tessera user --help)\n");
        return CLI_USAGE;
    }
    if (!config_user_valid(a->positional[1])) {
        fprintf(stderr, "tessera user add: invalid user name \"%s\": a user id is 1-128 "
                        "characters of A-Z a-z 0-9 . _ @ -\n",
                a->positional[1]);
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* Makes the token, stores its hash, and only then prints it, so that a
 * printed token always works. */
static int add_user(store *st, const char *name, bool admin) {
    char token[65], hash[65], err[TS_ERRLEN];
    if (auth_token_new(token) != TS_OK) {
        fprintf(stderr, "tessera user add: cannot get random bytes for a token\n");
        return CLI_FAILED;
    }
    auth_token_hash(token, hash);
    if (store_user_put(st, name, hash, admin, ts_now(), err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera user add: %s\n", err);
        return CLI_FAILED;
    }
    printf("%s\n", token);
    memset(token, 0, sizeof(token));
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "tessera user add: could not write the token to stdout; run the "
                        "command again for a new one (it replaces this one)\n");
        return CLI_FAILED;
    }
    fprintf(stderr,
            "tessera user add: new token for %s%s. It is shown only this once: only its "
            "SHA-256 hash is stored. Any earlier token of %s has been replaced and no longer "
            "works.\n",
            name, admin ? " (administrator)" : "", name);
    return CLI_OK;
}

/* See the top of this file. */
int cmd_user(int argc, char **argv) {
    cli_args a;
    bool done;
    char err[TS_ERRLEN];
    store *st = NULL;
    int rc = cli_parse(&user_spec, argc, argv, &a, &done);
    if (rc != CLI_OK || done) return rc;
    if ((rc = check_args(&a)) != CLI_OK) return rc;
    if (ts_mkdir_p(a.cfg.state_dir, err, sizeof(err)) != TS_OK ||
        store_open(a.cfg.db, &st, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera user add: %s\n", err);
        return CLI_FAILED;
    }
    rc = add_user(st, a.positional[1], cli_has(&a, "--admin"));
    store_close(st);
    return rc;
}
