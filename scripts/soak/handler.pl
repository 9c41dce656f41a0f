#!/usr/bin/perl
# The soak's command handler: `handler.pl <file>`. Perl rather than node because the soak runs
# hundreds of files a second on two cores: perl with Time::HiRes starts in about 3 ms of CPU,
# node in 40+ ms (measured here), which alone would need several cores at 200 files/s.
#
# It appends one tab-separated line per event to $SOAK_RECORDS (one syswrite on an O_APPEND
# descriptor: lines from concurrent processes never interleave):
#   ev  t(monotonic ns)  pid  ppid  worker  key  attempt  id  size  outcome
# ev is start | end | overlap. t is CLOCK_MONOTONIC, the clock of node's process.hrtime.bigint(),
# so it is comparable with the soak's own fault times.
#
# Overlap detector: the first thing a run does is take flock(LOCK_EX|LOCK_NB) on
# $SOAK_LOCKS/<name>.lock. The kernel drops the lock when the process dies, SIGKILL included,
# so if the lock is busy another run of the same file is alive right now: that is recorded as
# `overlap` (the exact violation the soak looks for) before waiting for the lock.
#
# What it does is decided by the file's first line, so the checker knows what to expect:
#   ok             succeed, stats line with the line count
#   sleep MS       sleep MS milliseconds, then succeed
#   fail K         fail (exit 1) on the first K runs of this content, then succeed
#   always-fail    exit 1 every time (dead once the retry budget is spent)
#   permanent      exit 65 (EX_DATAERR): dead at once
# The second line is `id NAME#GEN`: NAME is the lock key, NAME#GEN identifies this content.
use strict;
use warnings;
use Fcntl qw(:flock O_WRONLY O_APPEND O_CREAT O_RDWR);
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC);

my $file = $ARGV[0];
my $records = $ENV{SOAK_RECORDS} or die "SOAK_RECORDS is not set\n";
my $locks = $ENV{SOAK_LOCKS} or die "SOAK_LOCKS is not set\n";

sub now_ns { return sprintf('%.0f', clock_gettime(CLOCK_MONOTONIC) * 1e9) }

my ($id, $name, $size, $first) = ('?', '?', 0, '');

sub rec {
  my ($ev, $outcome) = @_;
  my $line = join("\t", $ev, now_ns(), $$, getppid(), $ENV{CKPT_WORKER_ID} // '', $ENV{CKPT_IDEMPOTENCY_KEY} // '',
    $ENV{CKPT_ATTEMPT} // '', $id, $size, $outcome // '') . "\n";
  sysopen(my $fh, $records, O_WRONLY | O_APPEND | O_CREAT, 0644) or die "cannot open $records: $!\n";
  syswrite($fh, $line) == length($line) or die "short write to $records\n";
  close($fh);
}

my $content = '';
if (open(my $in, '<', $file)) {
  local $/;
  $content = <$in> // '';
  close($in);
} else {
  print STDERR "soak handler: cannot read $file: $!\n";
  exit 1;
}
$size = length($content);
my @lines = split(/\n/, $content);
$first = $lines[0] // '';
if (defined $lines[1] && $lines[1] =~ /^id (\S+)$/) {
  $id = $1;
  ($name) = split(/#/, $id);
}

my $lock;
if ($name ne '?') {
  sysopen($lock, "$locks/$name.lock", O_RDWR | O_CREAT, 0644) or die "cannot open lock: $!\n";
  if (!flock($lock, LOCK_EX | LOCK_NB)) {
    rec('overlap', 'lock busy');
    flock($lock, LOCK_EX);
  }
}
rec('start', $first);

# Runs of this content so far (under the lock, so the count is exact).
sub bump_runs {
  my $f = "$locks/$id.runs";
  my $n = 0;
  if (open(my $r, '<', $f)) { $n = <$r> // 0; chomp $n; close($r); }
  $n++;
  open(my $w, '>', $f) or die "cannot write $f: $!\n";
  print $w "$n\n";
  close($w);
  return $n;
}

if ($first =~ /^sleep (\d+)$/) {
  select(undef, undef, undef, $1 / 1000);
} elsif ($first =~ /^fail (\d+)$/) {
  my $k = $1;
  if (bump_runs() <= $k) {
    rec('end', 'fail');
    print STDERR "soak handler: told to fail\n";
    exit 1;
  }
} elsif ($first eq 'always-fail') {
  rec('end', 'fail');
  print STDERR "soak handler: told to fail\n";
  exit 1;
} elsif ($first eq 'permanent') {
  rec('end', 'permanent');
  print STDERR "soak handler: bad data\n";
  exit 65;
}

my $n = scalar(grep { $_ ne '' } @lines);
rec('end', 'ok');
print "{\"total\":$n,\"filtered\":0,\"persisted\":$n}\n";
exit 0;
