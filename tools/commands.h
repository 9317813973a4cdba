/* commands.h: the subcommands of `trit`, one file each (tools/cmd_<name>.c). Each takes argv
 * with argv[0] = the command name and returns the process exit code. */
#ifndef TRIT_TOOLS_COMMANDS_H
#define TRIT_TOOLS_COMMANDS_H

int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
