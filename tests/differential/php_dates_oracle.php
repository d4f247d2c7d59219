<?php
// PHP's date parsing as Twig's `date` filter and function use it (twig_date_converter:
// `new \DateTime($text, $defaultTimezone)`), at a fixed "now": the oracle of
// test_php_dates.py.
//
// Reads one JSON document on stdin: {"cases": [{"text", "now", "zone"}]}; answers one line
// {"results": [{"ts": int, "local": "Y-m-d H:i:s", "zone": "e|T|P"} | {"error": message}]}.
//
// DateTime reads the real clock, so "now" cannot be fixed through it. strtotime($text,
// $now) runs the same timelib parser, the same filling of the missing fields from "now"
// (timelib_fill_holes with TIMELIB_NO_CLOBBER) and the same timelib_update_ts, with "now"
// in the default zone, as php_date_initialize does with the DateTimeZone Twig passes: it
// gives the instant. The zone the DateTime keeps does not depend on "now" (the text's zone,
// else the one given), so DateTime gives that, and both must agree on refusing the text
// (both fail on timelib errors only, not on its warnings). One difference: the empty string,
// which strtotime refuses and DateTime reads as "now" (as hookstream does); it is asked as
// "now". Microseconds are not compared (strtotime has none); the fixed "now"s are whole
// seconds.
error_reporting(E_ALL);
ini_set('display_errors', '0');

$input = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
$results = [];
foreach ($input['cases'] as $case) {
    $text = $case['text'] === '' ? 'now' : $case['text'];
    date_default_timezone_set($case['zone']);
    $ts = strtotime($text, $case['now']);
    try {
        $kept = (new DateTime($text, new DateTimeZone($case['zone'])))->getTimezone();
    } catch (\Exception $e) {
        $results[] = ['error' => $e->getMessage(), 'strtotime' => $ts];
        continue;
    }
    if ($ts === false) {
        $results[] = ['error' => 'strtotime refused what DateTime read'];
        continue;
    }
    $at = (new DateTime('@' . $ts))->setTimezone($kept);
    $results[] = ['ts' => $ts, 'local' => $at->format('Y-m-d H:i:s'), 'zone' => $at->format('e|T|P')];
}
echo json_encode(['results' => $results], JSON_THROW_ON_ERROR | JSON_INVALID_UTF8_SUBSTITUTE), "\n";
