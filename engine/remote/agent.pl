# runbook's host agent: one per host per run, started through the host's control master
# (engine/remote/agent.rs), it runs each step the engine sends it as a job of its own, several
# at once, so that a step costs the host one fork and one exec and no new ssh session.
#
# Its code is a constant; no value of a runbook is ever on a command line: requests come on
# stdin as length-prefixed records, reports go to stdout the same way (see agent_records.rs).
#
# Engine to agent (stdin):
#   run <id> <len>\n<payload>   payload: NUL-separated fields: grace in ms, "0" or "1" + cwd,
#                               the host's name, the number of shell words, the words, the
#                               number of variables, name and value of each, then the script
#   term <id>\n                 SIGTERM to the job's group (the engine times the grace)
#   kill <id>\n                 SIGKILL to the job's group now
#   stop <id>\n                 SIGTERM, the job's grace (timed here), then SIGKILL: the engine
#                               no longer waits for the job
# Agent to engine (stdout):
#   RUNBOOK-AGENT ready 1\n     once, before anything else
#   started <id> <pid>\n        the job's shell runs as <pid>, the leader of its own group
#   out <id> <len>\n<bytes>     what the job wrote on stdout
#   err <id> <len>\n<bytes>     ... on stderr
#   fail <id> <len>\n<message>  the job could not be started (nothing of it ran)
#   exit <id> <code> <stopped> <killed> <len>\n<what it wrote to $RUNBOOK_OUTPUT>
# Its own stderr carries perl's complaints only, kept by the engine to say why an agent died.
#
# When stdin ends (the connection dropped, the engine died or closed the run), every job still
# running gets SIGTERM, its grace, then SIGKILL, timed here; then the agent exits.

use strict;
use warnings;
use POSIX ();
use Fcntl qw(F_GETFD F_SETFD F_GETFL F_SETFL O_NONBLOCK);

# How long a job's output is still read once its shell has exited and what was left of its
# group was killed: a daemon that keeps the pipes open (in a session of its own) does not hold
# the step longer than this, and never writes into another step's output.
my $DRAIN = 0.2;

# Clock ticks a second, the unit of the real time `POSIX::times` reports (see `now`).
my $TICKS = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;

# How a job's exit is learnt. Perl runs a signal's handler only between two of its ops, never
# inside `select`'s system call: a SIGCHLD that comes after the loop's last look and before
# `select` sleeps has its handler (the self-pipe's byte) wait for `select` to return, and with
# the job's output already at its end nothing else may ever wake it (a lost wakeup; there is
# no `pselect` in perl). So each job's exit is also a descriptor `select` waits on: a pidfd,
# readable once the process exited (`pidfd_open`, Linux 5.3; number 434 on every
# architecture but these three). Where there is none, `select` sleeps at most `$REAP_POLL`
# while such a job runs, and the loop looks for exits then.
my $PIDFD_OPEN = ($^O eq 'linux' && (POSIX::uname())[4] !~ /^(?:alpha|ia64|mips)/) ? 434 : undef;
my $REAP_POLL = 0.25;

$SIG{HUP}  = 'IGNORE';
$SIG{PIPE} = 'IGNORE';
# The here-document this program was read from: no job should inherit it.
POSIX::close(3);
binmode STDIN;
binmode STDOUT;

# SIGCHLD through a self-pipe: the handler only writes a byte, which wakes `select` (when it
# runs in time: see `$PIDFD_OPEN` for when it does not).
pipe(my $wake_r, my $wake_w) or die "runbook agent: pipe: $!\n";
nonblocking($wake_r);
nonblocking($wake_w);
$SIG{CHLD} = sub { syswrite($wake_w, 'c') };

# The guardian: a process forked once, which learns each job's group and grace from the
# agent and, should the agent die with jobs running (killed, out of memory), stops them as a
# dropped connection would (SIGTERM, the grace, SIGKILL). It holds none of the session's
# descriptors, so the engine still sees the agent's end.
pipe(my $guard_r, my $guard_w) or die "runbook agent: pipe: $!\n";
my $guardian = fork;
die "runbook agent: fork: $!\n" unless defined $guardian;
if ($guardian == 0) {
    close($guard_w);
    guard($guard_r);
    POSIX::_exit(0);
}
close($guard_r);

my %jobs;      # id => job (a hash)
my %by_pid;    # pid => id, until reaped
my $input = '';
my $stdin_open = 1;

report("RUNBOOK-AGENT ready 1\n");

while (1) {
    reap();
    my $now = now();
    for my $id (keys %jobs) {
        my $job = $jobs{$id};
        if (defined $job->{kill_at} && !defined $job->{status} && $now >= $job->{kill_at}) {
            $job->{killed} = 1;
            signal_group($job, 'KILL');
            delete $job->{kill_at};
        }
        finish($id) if job_done($job, $now);
    }
    last if !$stdin_open && !%jobs;

    my ($rin, $win) = ('', '');
    vec($rin, fileno(STDIN), 1) = 1 if $stdin_open;
    vec($rin, fileno($wake_r), 1) = 1;
    my $wait;
    for my $job (values %jobs) {
        for my $pipe (grep { defined } $job->{out}, $job->{err}) {
            vec($rin, fileno($pipe), 1) = 1;
        }
        if (!defined $job->{status}) {
            if (defined $job->{exited}) {
                vec($rin, $job->{exited}, 1) = 1;
            }
            elsif (!defined $wait || $wait > $REAP_POLL) {
                $wait = $REAP_POLL;
            }
        }
        vec($win, fileno($job->{script}), 1) = 1 if defined $job->{script};
        for my $at (grep { defined } $job->{drain_until}, $job->{kill_at}) {
            my $left = $at - $now;
            $wait = $left if !defined $wait || $left < $wait;
        }
    }
    # A deadline past is due now; one ahead is at least a clock tick away (`now` counts in
    # ticks: a rounding error's sliver would have `select` return at once until it passes).
    if (defined $wait) {
        $wait = $wait <= 0 ? 0 : $wait < 1 / $TICKS ? 1 / $TICKS : $wait;
    }
    my ($rout, $wout) = ($rin, $win);
    my $ready = select($rout, $wout, undef, $wait);
    next if $ready <= 0;    # a timer is due, or a signal came (EINTR)

    if (vec($rout, fileno($wake_r), 1)) {
        1 while sysread($wake_r, my $ignored, 512);
    }
    if ($stdin_open && vec($rout, fileno(STDIN), 1)) {
        my $read = sysread(STDIN, $input, 65536, length $input);
        if (!$read) {
            $stdin_open = 0;
            hang_up();
        }
        else {
            commands();
        }
    }
    for my $id (keys %jobs) {
        my $job = $jobs{$id} or next;
        for my $stream ('out', 'err') {
            my $pipe = $job->{$stream};
            next unless defined $pipe && vec($rout, fileno($pipe), 1);
            my $read = sysread($pipe, my $bytes, 65536);
            if ($read) {
                report("$stream $id " . length($bytes) . "\n" . $bytes);
            }
            else {
                close($pipe);
                delete $job->{$stream};
            }
        }
        if (defined $job->{script} && vec($wout, fileno($job->{script}), 1)) {
            my $written = syswrite($job->{script}, $job->{text});
            if (defined $written) {
                substr($job->{text}, 0, $written) = '';
            }
            if (!defined $written || $job->{text} eq '') {
                # Done, or the shell stopped reading its script (it exited early).
                close($job->{script});
                delete $job->{script};
                delete $job->{text};
            }
        }
    }
}
exit 0;

# Seconds on a monotonic clock, to a clock tick (10 ms on Linux): the real time `times`
# reports (ticks since boot) rather than Time::HiRes, which is not in Debian's `perl-base`.
sub now { return (POSIX::times())[0] / $TICKS }

sub nonblocking {
    my ($handle) = @_;
    my $flags = fcntl($handle, F_GETFL, 0) or die "runbook agent: fcntl: $!\n";
    fcntl($handle, F_SETFL, $flags | O_NONBLOCK) or die "runbook agent: fcntl: $!\n";
}

# Writes a whole report to the engine. Blocking: a slow engine slows the jobs' output down,
# as a pipe would. Once the engine is gone (EPIPE), reports are dropped.
sub report {
    my ($bytes) = @_;
    while (length $bytes) {
        my $written = syswrite(STDOUT, $bytes);
        if (!defined $written) {
            next if $!{EINTR};
            return;
        }
        substr($bytes, 0, $written) = '';
    }
}

# Takes the complete commands out of the input.
sub commands {
    while (1) {
        my $newline = index($input, "\n");
        return if $newline < 0;
        my @words = split / /, substr($input, 0, $newline);
        my ($kind, $id) = @words;
        $kind = '' unless defined $kind;
        if ($kind eq 'run') {
            my $length = $words[2];
            return if length($input) < $newline + 1 + $length;
            my $payload = substr($input, $newline + 1, $length);
            substr($input, 0, $newline + 1 + $length) = '';
            start($id, $payload);
            next;
        }
        substr($input, 0, $newline + 1) = '';
        my $job = defined $id ? $jobs{$id} : undef;
        next unless $job && !defined $job->{status};
        if ($kind eq 'term') {
            if (!$job->{stopped}) {
                $job->{stopped} = 1;
                signal_group($job, 'TERM');
            }
        }
        elsif ($kind eq 'kill') {
            $job->{stopped} = 1;
            $job->{killed} = 1;
            signal_group($job, 'KILL');
        }
        elsif ($kind eq 'stop') {
            stop_with_grace($job);
        }
        else {
            print STDERR "runbook agent: unknown command `$kind`\n";
        }
    }
}

sub start {
    my ($id, $payload) = @_;
    my @fields = split /\0/, $payload, -1;
    my $grace = shift(@fields) / 1000;
    my $cwd = shift @fields;
    $cwd = substr($cwd, 0, 1) eq '1' ? substr($cwd, 1) : undef;
    my $host = shift @fields;
    my @shell = splice(@fields, 0, shift @fields);
    my %env = splice(@fields, 0, 2 * shift @fields);
    my $text = shift @fields;
    $text = '' unless defined $text;

    my $temporary = (defined $ENV{TMPDIR} && $ENV{TMPDIR} ne '') ? $ENV{TMPDIR} : '/tmp';
    my $output = "$temporary/runbook." . random_id() . ".output";
    my ($out_r, $out_w, $err_r, $err_w, $script_r, $script_w, $status_r, $status_w);
    if (!(pipe($out_r, $out_w) && pipe($err_r, $err_w) && pipe($script_r, $script_w)
        && pipe($status_r, $status_w)))
    {
        return fail($id, "the agent cannot make a pipe: $!");
    }
    my $pid = fork;
    if (!defined $pid) {
        return fail($id, "the agent cannot start a process: $!");
    }
    if ($pid == 0) {
        # The job: its own session and group, the signals as a shell starts with them.
        $SIG{$_} = 'DEFAULT' for qw(CHLD HUP PIPE);
        POSIX::sigprocmask(POSIX::SIG_SETMASK(), POSIX::SigSet->new);
        POSIX::setsid();
        umask 077;
        if (defined $cwd && !chdir $cwd) {
            syswrite($status_w, "the working directory $cwd does not exist");
            POSIX::_exit(1);
        }
        open(STDIN, '<', '/dev/null');
        POSIX::dup2(fileno($out_w), 1);
        POSIX::dup2(fileno($err_w), 2);
        if (fileno($script_r) == 4) {
            fcntl($script_r, F_SETFD, 0);
        }
        else {
            POSIX::dup2(fileno($script_r), 4);
        }
        $ENV{RUNBOOK_HOST} = $host;
        $ENV{RUNBOOK_OUTPUT} = $output;
        $ENV{$_} = $env{$_} for keys %env;
        # The status pipe is closed on exec: its end tells the agent the shell runs.
        { no warnings 'exec'; exec { $shell[0] } @shell, '/dev/fd/4'; }
        print STDERR "runbook: cannot run `$shell[0]` on the host: $!\n";
        POSIX::_exit(127);
    }
    close($_) for $out_w, $err_w, $script_r, $status_w;
    my $message = '';
    while (1) {
        my $read = sysread($status_r, $message, 4096, length $message);
        next if !defined $read && $!{EINTR};
        last unless $read;
    }
    close($status_r);
    if ($message ne '') {
        waitpid($pid, 0);
        close($_) for $out_r, $err_r, $script_w;
        return fail($id, $message);
    }
    nonblocking($_) for $out_r, $err_r, $script_w;
    my $job = {
        pid     => $pid,
        exited  => exit_descriptor($pid),
        grace   => $grace,
        output  => $output,
        out     => $out_r,
        err     => $err_r,
        script  => $script_w,
        text    => $text,
        stopped => 0,
        killed  => 0,
    };
    if ($text eq '') {
        close($script_w);
        delete $job->{script};
    }
    $jobs{$id} = $job;
    $by_pid{$pid} = $id;
    syswrite($guard_w, "+$pid " . int($grace * 1000) . "\n");
    report("started $id $pid\n");
    # Stdin ended while this job's request was being read: it stops as the others do.
    stop_with_grace($job) unless $stdin_open;
}

sub fail {
    my ($id, $message) = @_;
    report("fail $id " . length($message) . "\n" . $message);
}

sub random_id {
    my $bytes = '';
    if (open(my $random, '<', '/dev/urandom')) {
        read($random, $bytes, 16);
        close($random);
    }
    $bytes = pack('NNN', time, $$, rand(2**32)) if length($bytes) < 16;
    return unpack('H*', $bytes);
}

# Records the end of every job whose shell exited: its status as the shell reports it, then
# SIGKILL to what is left of its group.
sub reap {
    while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
        my $status = $?;
        my $id = delete $by_pid{$pid};
        next unless defined $id && $jobs{$id};
        my $job = $jobs{$id};
        $job->{status} = ($status & 127) ? 128 + ($status & 127) : $status >> 8;
        POSIX::close(delete $job->{exited}) if defined $job->{exited};
        kill 'KILL', -$pid;
        syswrite($guard_w, "-$pid\n");
        delete $job->{kill_at};
        $job->{drain_until} = now() + $DRAIN;
    }
}

# A descriptor that turns readable when process `pid` (a child not reaped yet) exits, or
# undef where the kernel has none (see `$PIDFD_OPEN`). Closed on exec, as pidfds are.
sub exit_descriptor {
    my ($pid) = @_;
    return undef unless defined $PIDFD_OPEN;
    my $descriptor = eval { syscall($PIDFD_OPEN, $pid + 0, 0) };
    return (defined $descriptor && $descriptor >= 0) ? $descriptor : undef;
}

sub job_done {
    my ($job, $now) = @_;
    return 0 unless defined $job->{status};
    return 1 if !defined $job->{out} && !defined $job->{err};
    return $now >= $job->{drain_until};
}

sub finish {
    my ($id) = @_;
    my $job = delete $jobs{$id};
    close($_) for grep { defined } @$job{qw(out err script)};
    POSIX::close($job->{exited}) if defined $job->{exited};
    my $output = '';
    if (open(my $file, '<', $job->{output})) {
        binmode $file;
        local $/;
        $output = <$file>;
        $output = '' unless defined $output;
        close($file);
    }
    unlink $job->{output};
    report("exit $id $job->{status} $job->{stopped} $job->{killed} " . length($output) . "\n"
        . $output);
}

sub signal_group {
    my ($job, $signal) = @_;
    kill($signal, -$job->{pid}) or kill($signal, $job->{pid});
}

sub stop_with_grace {
    my ($job) = @_;
    return if defined $job->{status} || defined $job->{kill_at};
    if (!$job->{stopped}) {
        $job->{stopped} = 1;
        signal_group($job, 'TERM');
    }
    $job->{kill_at} = now() + $job->{grace};
}

# The engine is gone: every job still running stops, SIGTERM then SIGKILL after its grace.
sub hang_up {
    stop_with_grace($_) for values %jobs;
}

# The guardian's life: it reads which groups run (`+<pgid> <grace ms>`, `-<pgid>`) until the
# agent's end closes the pipe; whatever still runs then is the agent's orphan.
sub guard {
    my ($pipe) = @_;
    open(STDIN,  '<', '/dev/null');
    open(STDOUT, '>', '/dev/null');
    open(STDERR, '>', '/dev/null');
    close($wake_r);
    close($wake_w);
    $SIG{CHLD} = 'DEFAULT';
    my %grace;
    my $buffer = '';
    while (1) {
        my $read = sysread($pipe, $buffer, 4096, length $buffer);
        next if !defined $read && $!{EINTR};
        last unless $read;
        while ($buffer =~ s/^([+-])(\d+)(?: (\d+))?\n//) {
            if ($1 eq '+') { $grace{$2} = $3 / 1000 }
            else           { delete $grace{$2} }
        }
    }
    return unless %grace;
    my $start = now();
    kill 'TERM', -$_ for keys %grace;
    while (%grace) {
        for my $group (keys %grace) {
            if (!kill(0, -$group)) {
                delete $grace{$group};
            }
            elsif (now() >= $start + $grace{$group}) {
                kill 'KILL', -$group;
                delete $grace{$group};
            }
        }
        select(undef, undef, undef, 0.1) if %grace;
    }
}
