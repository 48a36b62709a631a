# ruff: noqa: E501  (HTML lines are kept whole for readability)
"""Jinja2 templates of the console, kept in the package as strings (no package-data setup)."""

from __future__ import annotations

BASE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="csrf-token" content="{{ csrf_token() }}"><title>{{ title }} · multihome</title>
{% if refresh %}<meta http-equiv="refresh" content="{{ refresh }}">{% endif %}
<style>
body{font-family:sans-serif;margin:0;color:#222}
nav{background:#1f2d3d;padding:8px 16px}nav a{color:#fff;margin-right:18px;text-decoration:none}
main{padding:16px 24px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:left}th{background:#f0f0f0}.error{color:#b00020;margin-left:8px}
label{display:inline-block;min-width:160px}form p{margin:8px 0}pre{background:#f6f6f6;padding:8px}
textarea{font-family:monospace}.flash{background:#e7f7e7;padding:6px}
</style></head><body>
<nav><b style="color:#fff;margin-right:24px">multihome</b>
<a href="/nads">Network Attachment Definitions</a><a href="/pods">Pods</a><a href="/vms">VMs</a>
<a href="/topology">Node network</a><a href="/policies">Node policies</a></nav>
<main><h1>{{ title }}</h1>
{% for m in get_flashed_messages() %}<p class="flash">{{ m }}</p>{% endfor %}
{% block body %}{% endblock %}</main></body></html>"""

NAD_LIST = """{% extends "base" %}{% block body %}
<form method="get"><label for="namespace">Namespace</label>
<input id="namespace" name="namespace" value="{{ namespace }}" placeholder="all namespaces">
<button>Show</button></form>
<p><a id="create" href="/nads/new?namespace={{ namespace }}">Create Network Attachment Definition</a>
· <a href="/nads/yaml?namespace={{ namespace }}">Create from YAML</a></p>
{% if rows %}<table id="nads"><tr><th>Namespace</th><th>Name</th><th>Type</th><th>Bridge</th>
<th>VLAN</th><th>Age</th></tr>
{% for r in rows %}<tr><td>{{ r.namespace }}</td>
<td><a href="/nads/{{ r.namespace }}/{{ r.name }}">{{ r.name }}</a></td><td>{{ r.type }}</td>
<td>{{ r.bridge }}</td><td>{{ r.vlan }}</td><td>{{ r.age }}</td></tr>{% endfor %}</table>
{% else %}<p>No resources found{% if namespace %} in {{ namespace }} namespace{% endif %}.</p>{% endif %}
{% endblock %}"""

FIELD = """{% macro field(name, label, errors, value='', type='text', help='') %}
<p><label for="{{ name }}">{{ label }}</label>
{% if type == 'checkbox' %}<input type="checkbox" id="{{ name }}" name="{{ name }}"
{% if value %}checked{% endif %}>{% else %}<input type="{{ type }}" id="{{ name }}"
name="{{ name }}" value="{{ value }}">{% endif %}
{% if help %}<small>{{ help }}</small>{% endif %}
{% if errors.get(name) %}<span class="error" id="{{ name }}-error">{{ errors[name] }}</span>
{% endif %}</p>{% endmacro %}"""

NAD_FORM = """{% extends "base" %}{% import "field" as f %}{% block body %}
<p>Network type:
{% for t in types %}<a href="/nads/new?type={{ t }}&namespace={{ v.get('namespace','') }}"
>{% if t == type %}<b>{{ t }}</b>{% else %}{{ t }}{% endif %}</a> {% endfor %}
· <a href="/nads/yaml">YAML editor</a></p>
<form method="post" id="nad-form"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}"><input type="hidden" name="type" value="{{ type }}">
{% if errors.get('general') %}<p class="error" id="general-error">{{ errors['general'] }}</p>{% endif %}
{{ f.field('name', 'Name', errors, v.get('name','')) }}
{{ f.field('namespace', 'Namespace', errors, v.get('namespace','default')) }}
{% if type == 'linux-bridge' %}
{{ f.field('bridge', 'Bridge name', errors, v.get('bridge','')) }}
{{ f.field('resource', 'Resource bridge', errors, v.get('resource',''),
   help='optional: bridge.network.kubevirt.io/<this>, default the bridge name') }}
{{ f.field('vlan', 'VLAN tag number', errors, v.get('vlan',''), help='optional') }}
{{ f.field('macspoofchk', 'MAC spoof check', errors, v.get('macspoofchk', 'on' if not v else ''),
   type='checkbox') }}
{% elif type in ('macvlan', 'ipvlan') %}
{{ f.field('master', 'Master interface', errors, v.get('master','')) }}
{{ f.field('mode', 'Mode', errors, v.get('mode',''), help='macvlan: bridge|private|vepa|passthru; ipvlan: l2|l3|l3s') }}
{% elif type == 'host-device' %}
{{ f.field('device', 'Device', errors, v.get('device','')) }}
{% elif type == 'sriov' %}
{{ f.field('vlan', 'VLAN tag number', errors, v.get('vlan',''), help='optional') }}
{% endif %}
{{ f.field('ipam', 'IPAM (JSON)', errors, v.get('ipam',''), help='optional, e.g. {"type":"host-local","subnet":"10.10.0.0/24"}') }}
<p><button type="submit" id="submit">Create</button></p></form>{% endblock %}"""

NAD_YAML = """{% extends "base" %}{% block body %}
<form method="post" id="yaml-form"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<p><label for="namespace">Namespace</label><input id="namespace" name="namespace" value="{{ namespace }}"></p>
<p><textarea id="yaml" name="yaml" rows="20" cols="100">{{ text }}</textarea></p>
{% if error %}<p class="error" id="yaml-error">{{ error }}</p>{% endif %}
<p><button type="submit" id="submit">{{ button }}</button></p></form>{% endblock %}"""

NAD_DETAIL = """{% extends "base" %}{% block body %}
<table><tr><th>Namespace</th><td>{{ obj.namespace }}</td></tr>
<tr><th>Name</th><td>{{ obj.name }}</td></tr>
{% for k, val in annotations.items() %}<tr><th>{{ k }}</th><td>{{ val }}</td></tr>{% endfor %}
<tr><th>Created</th><td>{{ obj.metadata.get('creationTimestamp','') }}</td></tr></table>
<h2>Config</h2><pre id="config">{{ config }}</pre>
<h2>YAML</h2><pre>{{ yaml_text }}</pre>
<form method="post" action="/nads/{{ obj.namespace }}/{{ obj.name }}/delete"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<button id="delete">Delete</button></form>{% endblock %}"""

PODS = """{% extends "base" %}{% block body %}
{% if not pods %}<p>No pods.</p>{% endif %}
<table id="pods"><tr><th>Namespace</th><th>Pod</th><th>Interface</th><th>Addresses</th><th>MAC</th>
<th>Network (NAD)</th><th>Default</th><th>Isolated</th><th>Selected by (MultiNetworkPolicy)</th></tr>
{% for p in pods %}{% for e in p.status or [{}] %}<tr>
{% if loop.first %}<td rowspan="{{ (p.status or [{}])|length }}">{{ p.namespace }}</td>
<td rowspan="{{ (p.status or [{}])|length }}">{{ p.name }}</td>{% endif %}
<td>{{ e.get('interface','') }}</td><td>{{ (e.get('ips') or [])|join(', ') }}</td>
<td>{{ e.get('mac','') }}</td><td>{{ e.get('name','') }}</td>
<td>{{ 'yes' if e.get('default') else '' }}</td><td class="isolated">{{ e.get('isolated','') }}</td>
{% if loop.first %}<td class="policies" rowspan="{{ (p.status or [{}])|length }}">{{ p.policies|join(', ') or 'none (open)' }}</td>{% endif %}</tr>{% endfor %}{% endfor %}</table>
{% endblock %}"""

VMS = """{% extends "base" %}{% block body %}
{% if not vms %}<p>No VMs.</p>{% endif %}
{% for vm in vms %}<h2>{{ vm.rec.namespace }}/{{ vm.rec.name }}</h2>
<p>launcher pod {{ vm.rec.pod }} · accel {{ vm.rec.accel or '-' }} · memory {{ vm.rec.memory }} MiB</p>
<table><tr><th>Guest NIC</th><th>Pod interface</th><th>Binding</th><th>MAC</th><th>Addresses</th>
<th>Network (NAD)</th></tr>
{% for n in vm.rec.nics %}<tr><td>{{ n.guest_ifname }}</td><td>{{ n.ifname }}</td><td>{{ n.binding }}</td>
<td>{{ n.mac }}</td><td>{{ n.addresses|join(', ') }}</td><td>{{ n.network }}</td></tr>{% endfor %}
</table>
<h3>Launcher pod network-status</h3><table><tr><th>Interface</th><th>Addresses</th><th>MAC</th><th>Network</th></tr>
{% for e in vm.status %}<tr><td>{{ e.get('interface','') }}</td><td>{{ (e.get('ips') or [])|join(', ') }}</td>
<td>{{ e.get('mac','') }}</td><td>{{ e.get('name','') }}</td></tr>{% endfor %}</table>
{% endfor %}{% endblock %}"""

TOPOLOGY = """{% extends "base" %}{% block body %}
{% if error %}<p class="error">{{ error }}</p>{% endif %}
<p><a href="/topology.svg">SVG</a></p><div id="topology">{{ svg|safe }}</div>{% endblock %}"""

POLICIES = """{% extends "base" %}{% block body %}
<p><a id="apply" href="/policies/apply">Apply a policy from YAML</a></p>
{% if not rows %}<p>No NodeNetworkConfigurationPolicies.</p>{% else %}
<table id="policies"><tr><th>Policy</th><th>Node</th><th>Enactment</th><th>Reason</th><th>Message</th></tr>
{% for r in rows %}<tr><td>{{ r.policy }}</td><td>{{ r.node }}</td><td class="state">{{ r.state }}</td>
<td>{{ r.reason }}</td><td>{{ r.message }}</td></tr>{% endfor %}</table>{% endif %}
{% endblock %}"""

LOGIN = """{% extends "base" %}{% block body %}
<form method="post" action="/login" id="login-form"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<input type="hidden" name="next" value="{{ next }}">
<p><label for="token">Access token</label><input type="password" id="token" name="token"
autocomplete="current-password"></p>
{% if error %}<p class="error" id="login-error">{{ error }}</p>{% endif %}
<p><button type="submit" id="submit">Log in</button></p></form>{% endblock %}"""

ALL: dict[str, str] = {"login": LOGIN, "base": BASE, "field": FIELD, "nad_list": NAD_LIST, "nad_form": NAD_FORM,
                       "nad_yaml": NAD_YAML, "nad_detail": NAD_DETAIL, "pods": PODS, "vms": VMS,
                       "topology": TOPOLOGY, "policies": POLICIES}
