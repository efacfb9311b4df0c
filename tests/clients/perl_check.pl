#!/usr/bin/env perl
# Cache::Memcached round trips against HOST PORT.
use strict;
use warnings;
use Cache::Memcached;

my ($host, $port) = @ARGV;
die "usage: perl_check.pl HOST PORT\n" unless $port;
my $m = Cache::Memcached->new({ servers => ["$host:$port"], connect_timeout => 5, select_timeout => 5 });
my $fails = 0;
sub check { my ($ok, $what) = @_; unless ($ok) { print "FAIL: $what\n"; $fails++; } }

check($m->set("pl:a", "hello"), "set");
check(($m->get("pl:a") // '') eq "hello", "get");
# Cache::Memcached 1.30 has no gets/cas methods: send them on the client's own socket
# with run_command (which reads up to END), ending each cas with a get.
my $sock = $m->get_sock("pl:a");
my @g = $m->run_command($sock, "gets pl:a\r\n");
my ($cas) = ($g[0] // '') =~ /^VALUE pl:a \d+ 5 (\d+)\r\n$/;
check(defined $cas && $g[1] eq "hello\r\n" && $g[2] eq "END\r\n", "gets: @g");
$cas //= 0;
my @r = $m->run_command($sock, "cas pl:a 0 0 5 $cas\r\nworld\r\nget pl:a\r\n");
check($r[0] eq "STORED\r\n", "cas: @r");
@r = $m->run_command($sock, "cas pl:a 0 0 5 $cas\r\nstale\r\nget pl:a\r\n");
check($r[0] eq "EXISTS\r\n", "cas with a stale unique: @r");
check(($m->get("pl:a") // '') eq "world", "get after cas");
check($m->set("pl:n", 10), "set number");
check(($m->incr("pl:n", 5) // -1) == 15, "incr");
check(($m->decr("pl:n", 20) // -1) == 0, "decr floors at 0");
check(!defined $m->incr("pl:missing", 1), "incr of a missing key");
check(!$m->add("pl:a", "x"), "add of an existing key");
check($m->replace("pl:a", "r"), "replace");
check($m->append("pl:a", "!"), "append");
check($m->prepend("pl:a", "<"), "prepend");
check(($m->get("pl:a") // '') eq "<r!", "get after append/prepend");
my %many = map { ("pl:m$_" => "v$_" x ($_ + 1)) } 0 .. 99;
$m->set($_, $many{$_}) for keys %many;
my $got = $m->get_multi(keys %many, "pl:absent");
check(scalar(keys %$got) == 100, "get_multi count");
check(!grep({ $got->{$_} ne $many{$_} } keys %many), "get_multi values");
my $ref = { list => [1, 2, 3], text => "x" x 2000 };
check($m->set("pl:ref", $ref), "set of a serialized reference");
my $back = $m->get("pl:ref");
check(ref $back eq 'HASH' && $back->{text} eq "x" x 2000 && "@{$back->{list}}" eq "1 2 3", "flags round trip (Storable)");
check($m->delete("pl:a"), "delete");
check(!$m->delete("pl:a"), "delete of a missing key");
check(!defined $m->get("pl:a"), "get after delete");
if ($fails) { print "perl Cache::Memcached: $fails checks failed\n"; exit 1; }
print "perl Cache::Memcached: all checks passed\n";
