using System.Text.RegularExpressions;

namespace Diffuse.Tests;

/// <summary>
/// The library's parts depend on each other one way: the namespace dependency graph of src/Diffuse, read from the
/// source, has no cycle. A file of namespace N depends on namespace M when it has <c>using M</c> (plain, static or alias),
/// names a type as <c>Diffuse.M.Type</c> or <c>M.Type</c> relative to the root, or (for M an enclosing namespace of N,
/// whose types need no using) names a type declared in M. The root namespace <c>Diffuse</c> is left out: it holds the
/// facade (<c>DiffusionModel</c>), which uses every part, and the error types (<c>DiffuseException</c>, <c>Param</c>),
/// which every part uses.
/// </summary>
public class NamespaceDependencyTests
{
    private const string Root = "Diffuse";

    /// <summary>
    /// Dependencies that close a cycle and that work in progress removes, each with the reason; the test fails when one
    /// of them is gone, so that it leaves this list too.
    /// </summary>
    private static readonly (string From, string To, string Why)[] Pending = [];

    [Fact]
    public void TheLibrarysNamespacesFormNoCycle()
    {
        var graph = Graph(LibrarySource.CodeOf(LibrarySource.Folder, keepWhiteSpace: true));
        Assert.Contains("Diffuse.Sampling", graph.Keys);
        Assert.Contains("Diffuse.Schedules", graph["Diffuse.Sampling"]);
        foreach (var (from, to, why) in Pending)
            Assert.True(graph[from].Remove(to), $"{from} no longer uses {to} ({why}): remove the entry from Pending.");
        var cycles = Cycles(graph);
        Assert.True(cycles.Count == 0, "namespace cycles: " + string.Join("; ", cycles.Select(c => string.Join(" → ", c))));
    }

    [Fact]
    public void ACycleIsFoundAndNamed()
    {
        // Through a using, a qualified name and an enclosing namespace's type used without a using.
        var files = new (string, string)[]
        {
            ("A.cs", "using Diffuse.B;\nnamespace Diffuse.A;\npublic class Alpha { Beta b; }"),
            ("B.cs", "namespace Diffuse.B;\npublic class Beta { C.Gamma g; }"),
            ("C.cs", "namespace Diffuse.C;\npublic record Gamma(Diffuse.A.Sub.Delta D);"),
            ("D.cs", "namespace Diffuse.A.Sub;\npublic enum Delta { One }\npublic sealed class Epsilon { Alpha a; }"),
            ("E.cs", "using Diffuse.C;\nnamespace Diffuse.E;\npublic class Zeta { }"),
        };
        var graph = Graph(files);
        Assert.Equal(new[] { "Diffuse.B" }, graph["Diffuse.A"].Order());
        Assert.Equal(new[] { "Diffuse.A" }, graph["Diffuse.A.Sub"].Order());
        var cycle = Assert.Single(Cycles(graph));
        Assert.Equal(new[] { "Diffuse.A", "Diffuse.B", "Diffuse.C", "Diffuse.A.Sub", "Diffuse.A" }, cycle);
    }

    /// <summary>The dependencies of each namespace of <paramref name="files"/> on the others (the root left out).</summary>
    internal static Dictionary<string, HashSet<string>> Graph(IEnumerable<(string File, string Code)> files)
    {
        var parsed = files.Select(f => (f.File, f.Code, Namespace: Regex.Match(f.Code, @"^\s*namespace\s+([\w.]+)\s*;", RegexOptions.Multiline).Groups[1].Value))
            .Where(f => f.Namespace.StartsWith(Root, StringComparison.Ordinal))
            .ToArray();
        var types = parsed.GroupBy(f => f.Namespace).ToDictionary(g => g.Key, g => g
            .SelectMany(f => Regex.Matches(f.Code, @"\b(?:class|struct|interface|enum|record)\s+(?:class\s+|struct\s+)?([A-Z]\w*)").Select(m => m.Groups[1].Value))
            .ToHashSet(StringComparer.Ordinal));
        var namespaces = types.Keys.ToHashSet(StringComparer.Ordinal);
        var graph = namespaces.Where(n => n != Root).ToDictionary(n => n, _ => new HashSet<string>(StringComparer.Ordinal));
        string? Known(string name)
        {
            for (string n = name; n.Length > 0; n = n.Contains('.') ? n[..n.LastIndexOf('.')] : "")
                if (namespaces.Contains(n)) return n;
            return null;
        }
        foreach (var (_, code, ns) in parsed)
        {
            if (ns == Root) continue;
            var uses = graph[ns];
            foreach (Match m in Regex.Matches(code, @"^\s*(?:global\s+)?using\s+(?:static\s+)?(?:\w+\s*=\s*)?(Diffuse(?:\.\w+)*)\s*;", RegexOptions.Multiline))
                if (Known(m.Groups[1].Value) is { } target) uses.Add(target);
            foreach (Match m in Regex.Matches(code, @"(?<![\w.])Diffuse(?:\.\w+)+"))
                if (Known(m.Value) is { } target) uses.Add(target);
            foreach (var other in namespaces.Where(n => n != Root))
            {
                string relative = other[(Root.Length + 1)..];
                foreach (Match m in Regex.Matches(code, @"(?<![\w.])" + Regex.Escape(relative) + @"\.([A-Z]\w*)"))
                    if (types[other].Contains(m.Groups[1].Value)) uses.Add(other);
            }
            for (string parent = ns[..ns.LastIndexOf('.')]; parent != Root; parent = parent[..parent.LastIndexOf('.')])
                if (types.TryGetValue(parent, out var declared) && Regex.Matches(code, @"\b[A-Z]\w*\b").Any(m => declared.Contains(m.Value)))
                    uses.Add(parent);
            uses.Remove(ns);
            uses.Remove(Root);
        }
        return graph;
    }

    /// <summary>One cycle (first node repeated at the end) per strongly connected component of more than one namespace.</summary>
    internal static List<string[]> Cycles(Dictionary<string, HashSet<string>> graph)
    {
        var cycles = new List<string[]>();
        var done = new HashSet<string>(StringComparer.Ordinal);
        foreach (var start in graph.Keys.Order(StringComparer.Ordinal))
        {
            if (done.Contains(start)) continue;
            // Shortest path from start back to start, breadth first, in sorted order so the message is stable.
            var previous = new Dictionary<string, string>(StringComparer.Ordinal);
            var queue = new Queue<string>();
            queue.Enqueue(start);
            string? closing = null;
            while (queue.Count > 0 && closing is null)
            {
                var node = queue.Dequeue();
                foreach (var next in graph.GetValueOrDefault(node, []).Order(StringComparer.Ordinal))
                {
                    if (next == start) { closing = node; break; }
                    if (!previous.ContainsKey(next) && !done.Contains(next)) { previous[next] = node; queue.Enqueue(next); }
                }
            }
            done.Add(start);
            if (closing is null) continue;
            var path = new List<string> { start };
            for (string n = closing; n != start; n = previous[n]) path.Insert(1, n);
            path.Add(start);
            cycles.Add(path.ToArray());
            foreach (var n in path) done.Add(n);
        }
        return cycles;
    }
}
