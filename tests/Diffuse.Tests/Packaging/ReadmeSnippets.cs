using System.Text;
using System.Text.RegularExpressions;

namespace Diffuse.Tests.Packaging;

/// <summary>
/// Turns the C# examples of a Markdown document into one program, as a new user would paste them: every <c>```csharp</c>
/// block of a section, their <c>using</c> directives collected (once each) at the top, and each block's statements in a
/// scope of their own, in order.
/// </summary>
internal static partial class ReadmeSnippets
{
    /// <summary>The <c>```csharp</c> blocks between the heading <paramref name="heading"/> and the next heading of its level or higher.</summary>
    /// <exception cref="InvalidOperationException">The document has no such heading.</exception>
    public static IReadOnlyList<string> Blocks(string markdown, string heading)
    {
        var lines = markdown.Replace("\r\n", "\n").Split('\n');
        int level = heading.TakeWhile(c => c == '#').Count();
        int start = Array.FindIndex(lines, l => l.TrimEnd() == heading);
        if (start < 0) throw new InvalidOperationException($"the document has no heading '{heading}'.");
        var blocks = new List<string>();
        StringBuilder? block = null;
        for (int i = start + 1; i < lines.Length; i++)
        {
            string line = lines[i];
            if (block is null)
            {
                int hashes = line.TakeWhile(c => c == '#').Count();
                if (hashes > 0 && hashes <= level && line.Length > hashes && line[hashes] == ' ') break;
                if (line.TrimStart().StartsWith("```csharp", StringComparison.Ordinal)) block = new StringBuilder();
            }
            else if (line.TrimStart().StartsWith("```", StringComparison.Ordinal))
            {
                blocks.Add(block.ToString());
                block = null;
            }
            else block.Append(line).Append('\n');
        }
        if (block is not null) throw new InvalidOperationException($"a ```csharp block under '{heading}' is not closed.");
        return blocks;
    }

    /// <summary>
    /// One top-level program from <paramref name="blocks"/>: their distinct using directives first, then each block's
    /// other lines inside <c>{ … }</c>, then <paramref name="epilogue"/>.
    /// </summary>
    public static string Program(IEnumerable<string> blocks, string epilogue)
    {
        var usings = new List<string>();
        var body = new StringBuilder();
        foreach (string block in blocks)
        {
            body.Append("{\n");
            foreach (string line in block.Split('\n'))
            {
                var directive = UsingDirective().Match(line);
                if (directive.Success)
                {
                    string normalized = Regex.Replace(directive.Groups["directive"].Value, @"\s+", " ");
                    if (!usings.Contains(normalized)) usings.Add(normalized);
                }
                else if (line.Trim().Length > 0) body.Append("    ").Append(line).Append('\n');
            }
            body.Append("}\n");
        }
        var program = new StringBuilder();
        foreach (string u in usings) program.Append(u).Append('\n');
        program.Append('\n').Append(body).Append(epilogue).Append('\n');
        return program.ToString();
    }

    /// <summary>A using directive (<c>using A.B;</c>, <c>using static A.B;</c>, <c>using X = A.B;</c>), not a using declaration or statement.</summary>
    [GeneratedRegex(@"^\s*(?<directive>using\s+(static\s+)?[A-Za-z_][\w.]*(\s*=\s*[\w.<>, ]+)?\s*;)\s*(//.*)?$")]
    private static partial Regex UsingDirective();
}
