/*
 * user.c - `tessera user add NAME [--admin]` and `tessera user revoke NAME`
 * (DESIGN §3): give a user a new API token, or take it away.
 *
 * add: the token goes to stdout alone, so that scripts can capture it
 * (TOKEN=$(tessera user add alice)); everything for people goes to stderr.
 * Only the token's SHA-256 is stored, so it is shown once: a lost token is
 * replaced by running the command again, which also revokes the old one.
 *
 * revoke: the user keeps its name (and workflows) but has no token until
 * the next add. Browser sessions are bound to the token they were made
 * from (auth.h), so revoking or replacing a token also ends every session
 * made from it, on every worker, at the next request.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "http/auth.h"
#include "store/store.h"
#include "util/config.h"
#include "util/layout.h"
#include "util/util.h"

static const char *const user_config_flags[] = {"--db", "--state-dir", NULL};
static const char *const user_bool_flags[] = {"--admin", NULL};

static const cli_spec user_spec = {
    .name = "user",
    .usage = "usage: tessera user add NAME [--admin] [options]\n"
             "       tessera user revoke NAME [options]\n"
             "\n"
             "add     creates user NAME with a new API token, or gives an existing user a new\n"
             "        one (the old token, and every browser session made with it, stop working\n"
             "        at once). The token is printed on stdout, once: only its SHA-256 hash is\n"
             "        stored. Clients send it as Authorization: Bearer <token> (tessera commands\n"
             "        read it from TESSERA_TOKEN).\n"
             "revoke  takes NAME's token away, and with it every browser session made from it;\n"
             "        NAME keeps its workflows and can be given a new token with add.\n"
             "NAME is 1-128 characters of A-Z a-z 0-9 . _ @ -\n"
             "\n"
             "options (each also read from the TESSERA_* variable and ./.env):\n"
             "  --admin           add: the user is an administrator (without it: not one)\n"
             "  --db PATH         SQLite database (TESSERA_DB; default STATE_DIR/tessera.db)\n"
             "  --state-dir DIR   state directory (TESSERA_STATE_DIR; ./var)\n",
    .config_flags = user_config_flags,
    .bool_flags = user_bool_flags,
    .min_positional = 1,
    .max_positional = 2,
};

/* Checks "add NAME" or "revoke NAME": CLI_OK, or CLI_USAGE after saying
 * what is wrong. */
static int check_args(const cli_args *a) {
    const char *action = a->positional[0];
    if (strcmp(action, "add") != 0 && strcmp(action, "revoke") != 0) {
        fprintf(stderr, "tessera user: unknown action \"%s\": use add or revoke "
                        "(see tessera user --help)\n",
                action);
        return CLI_USAGE;
    }
    if (a->n_positional < 2) {
        fprintf(stderr, "tessera user %s: missing NAME (see tessera user --help)\n", action);
        return CLI_USAGE;
    }
    if (!config_user_valid(a->positional[1])) {
        fprintf(stderr, "tessera user %s: invalid user name \"%s\": a user id is 1-128 "
                        "characters of A-Z a-z 0-9 . _ @ -\n",
                action, a->positional[1]);
        return CLI_USAGE;
    }
    if (strcmp(action, "revoke") == 0 && cli_has(a, "--admin")) {
        fprintf(stderr, "tessera user revoke: --admin belongs to add\n");
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
            "SHA-256 hash is stored. Any earlier token of %s, and every session made with "
            "it, has been replaced and no longer works.\n",
            name, admin ? " (administrator)" : "", name);
    return CLI_OK;
}

/* Revokes; an unknown name is an error (exit 1), so a typo is noticed. */
static int revoke_user(store *st, const char *name) {
    char err[TS_ERRLEN];
    int rc = store_user_revoke(st, name, err, sizeof(err));
    if (rc == STORE_NOTFOUND) {
        fprintf(stderr, "tessera user revoke: no user \"%s\"\n", name);
        return CLI_FAILED;
    }
    if (rc != TS_OK) {
        fprintf(stderr, "tessera user revoke: %s\n", err);
        return CLI_FAILED;
    }
    fprintf(stderr,
            "tessera user revoke: %s has no token now; the old one and every session made "
            "with it no longer work. `tessera user add %s` gives a new one.\n",
            name, name);
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
    bool add = strcmp(a.positional[0], "add") == 0;
    int tightened = 0;
    if (layout_state_dir_make(a.cfg.state_dir, &tightened, err, sizeof(err)) != TS_OK ||
        store_open(a.cfg.db, &st, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera user %s: %s\n", a.positional[0], err);
        return CLI_FAILED;
    }
    rc = add ? add_user(st, a.positional[1], cli_has(&a, "--admin"))
             : revoke_user(st, a.positional[1]);
    store_close(st);
    return rc;
}
