<?php
// Real Twig with GLPI's webhook environment: the oracle of the differential tests.
//
// Reads JSON documents on stdin, one a line:
// {"cases": [{"template", "context", "mode", "timezone"}]} (timezone: PHP's default time
// zone for the render, as GLPI sets it from its instance setting; UTC if absent);
// answers each with one line {"results": [{"out": base64} | {"error": "Class: message"}]},
// so that one PHP process serves a whole test session.
// mode "glpi": as GLPI's Webhook::getWebhookBody (every string of the data has `"`
// pre-escaped as `\"`, Twig's default HTML autoescape); mode "raw": autoescape off and
// data as is, the Twig semantics hookstream's own escaping builds on; mode "json": as
// "raw" with the filters hs_json_string and hs_json_value, hookstream's JSON escaping of a
// `{{ }}` inside a JSON string or in value position (the tests wrap prints with them).
// The policy is GLPI's TemplateManager::getSecurityPolicy(), sandboxed globally.
require '/usr/share/php/Twig/autoload.php';

use Twig\Environment;
use Twig\Extension\SandboxExtension;
use Twig\Loader\ArrayLoader;
use Twig\Sandbox\SecurityPolicy;

error_reporting(E_ALL & ~E_DEPRECATED & ~E_USER_DEPRECATED);
ini_set('display_errors', '0');
date_default_timezone_set('UTC');

function policy(): SecurityPolicy
{
    $tags = ['apply', 'autoescape', 'block', 'if', 'for', 'macro', 'set'];
    $filters = [
        'abs', 'batch', 'capitalize', 'column', 'date', 'default', 'escape', 'filter', 'first',
        'format', 'join', 'json_encode', 'keys', 'last', 'length', 'lower', 'map', 'merge',
        'nl2br', 'raw', 'reduce', 'replace', 'reverse', 'round', 'slice', 'sort', 'split',
        'striptags', 'title', 'trim', 'upper', 'url_encode',
    ];
    $functions = ['date', 'max', 'min', 'random', 'range'];
    return new SecurityPolicy($tags, $filters, [], [], $functions);
}

function pre_escape($value)
{
    if (is_array($value)) {
        foreach ($value as $k => $v) {
            $value[$k] = pre_escape($v);
        }
    } elseif (is_string($value)) {
        $value = str_replace('"', '\\"', $value);
    }
    return $value;
}

function json_text($value): string
{
    // Twig's string conversion, JSON-escaped without the quotes (hookstream's JSON strings).
    if ($value instanceof \Twig\Markup) {
        return (string) $value;
    }
    $text = is_array($value) ? 'Array' : (string) $value;
    return substr(json_encode($text, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), 1, -1);
}

function json_value($value): string
{
    if ($value instanceof \Twig\Markup || is_string($value)) {
        return json_text($value);
    }
    if (null === $value) {
        return 'null';
    }
    if (is_bool($value)) {
        return $value ? 'true' : 'false';
    }
    return json_encode($value);
}

// Twig caches a compiled template class per process by name, source and extension set,
// not by the autoescape option: one marker extension per mode keeps the modes apart.
class RawMode extends \Twig\Extension\AbstractExtension
{
}

class JsonMode extends \Twig\Extension\AbstractExtension
{
}

function render_case(array $case): array
{
    $mode = $case['mode'] ?? 'glpi';
    date_default_timezone_set($case['timezone'] ?? 'UTC');  // read by each new Environment
    $glpi = $mode === 'glpi' || $mode === 'glpi_url';  // glpi_url: URL and headers, no pre-escape
    $twig = new Environment(new ArrayLoader(['template' => $case['template']]),
                            ['autoescape' => $glpi ? 'html' : false]);
    $policy = policy();
    if ($mode === 'json') {
        $twig->addFilter(new \Twig\TwigFilter('hs_json_string', 'json_text'));
        $twig->addFilter(new \Twig\TwigFilter('hs_json_value', 'json_value'));
        $policy->setAllowedFilters(array_merge(
            ['hs_json_string', 'hs_json_value'],
            ['abs', 'batch', 'capitalize', 'column', 'date', 'default', 'escape', 'filter',
             'first', 'format', 'join', 'json_encode', 'keys', 'last', 'length', 'lower', 'map',
             'merge', 'nl2br', 'raw', 'reduce', 'replace', 'reverse', 'round', 'slice', 'sort',
             'split', 'striptags', 'title', 'trim', 'upper', 'url_encode']));
    }
    if ($mode === 'raw') {
        $twig->addExtension(new RawMode());
    } elseif ($mode === 'json') {
        $twig->addExtension(new JsonMode());
    }
    $twig->addExtension(new SandboxExtension($policy, true));
    $context = $case['context'] ?? [];
    if ($mode === 'glpi') {
        $context = pre_escape($context);
    }
    try {
        return ['out' => base64_encode($twig->render('template', $context))];
    } catch (\Throwable $e) {
        return ['error' => get_class($e) . ': ' . $e->getMessage()];
    }
}

while (($line = fgets(STDIN)) !== false) {
    if (trim($line) === '') {
        continue;
    }
    $input = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
    $results = [];
    foreach ($input['cases'] as $case) {
        $results[] = render_case($case);
    }
    echo json_encode(['results' => $results], JSON_THROW_ON_ERROR | JSON_INVALID_UTF8_SUBSTITUTE), "\n";
    fflush(STDOUT);
}
