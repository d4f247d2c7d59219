<?php
// Real Twig with GLPI's webhook environment: the oracle of the differential tests.
//
// Reads one JSON document on stdin: {"cases": [{"template", "context", "mode", "now"}]},
// writes {"results": [{"out": base64} | {"error": "Class: message"}]} on stdout.
// mode "glpi": as GLPI's Webhook::getWebhookBody (every string of the data has `"`
// pre-escaped as `\"`, Twig's default HTML autoescape); mode "raw": autoescape off and
// data as is, the Twig semantics hookstream's own escaping builds on.
// The policy is GLPI's TemplateManager::getSecurityPolicy(), sandboxed globally.
require '/usr/share/php/Twig/autoload.php';

use Twig\Environment;
use Twig\Extension\SandboxExtension;
use Twig\Loader\ArrayLoader;
use Twig\Sandbox\SecurityPolicy;

error_reporting(E_ALL & ~E_DEPRECATED & ~E_USER_DEPRECATED);
ini_set('display_errors', 'stderr');
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

function render_case(array $case): array
{
    $glpi = ($case['mode'] ?? 'glpi') === 'glpi';
    $twig = new Environment(new ArrayLoader(['template' => $case['template']]),
                            ['autoescape' => $glpi ? 'html' : false]);
    $twig->addExtension(new SandboxExtension(policy(), true));
    $context = $case['context'] ?? [];
    if ($glpi) {
        $context = pre_escape($context);
    }
    try {
        return ['out' => base64_encode($twig->render('template', $context))];
    } catch (\Throwable $e) {
        return ['error' => get_class($e) . ': ' . $e->getMessage()];
    }
}

$input = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
$results = [];
foreach ($input['cases'] as $case) {
    $results[] = render_case($case);
}
echo json_encode(['results' => $results], JSON_THROW_ON_ERROR);
