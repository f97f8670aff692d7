using System.Text;

namespace Diffuse.Tests;

/// <summary>
/// The string literals of the library's source (src/Diffuse/**/*.cs), read by a small C# lexer: comments are skipped,
/// regular, verbatim and interpolated strings are read (holes become "{…}", and the literals inside holes are literals
/// too), and each literal knows the code just before it, so that <c>Param.Of("name")</c> can be recognised.
/// </summary>
internal static class LibrarySource
{
    /// <summary>A string literal: where it stands, its text, and the code before it without white space.</summary>
    internal sealed record Literal(string File, int Line, string Text, string CodeBefore);

    /// <summary>src/Diffuse of the repository the tests were built from.</summary>
    internal static string Folder { get; } = FindFolder();

    /// <summary>Every literal of every file.</summary>
    internal static IReadOnlyList<Literal> Literals { get; } = Directory
        .EnumerateFiles(Folder, "*.cs", SearchOption.AllDirectories)
        .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
        .Order(StringComparer.Ordinal)
        .SelectMany(f => new Lexer(Path.GetRelativePath(Folder, f), File.ReadAllText(f)).Run())
        .ToArray();

    /// <summary>How many times the library's code (comments and strings left out) calls <c>Param.Of(</c>.</summary>
    internal static int ParamOfCalls { get; private set; }

    /// <summary>The literals that are the first argument of <c>Param.Of</c>: the parameter names the messages use.</summary>
    internal static IEnumerable<Literal> ParameterNames => Literals.Where(l => l.CodeBefore.EndsWith("Param.Of(", StringComparison.Ordinal));

    /// <summary>
    /// The code of every .cs file under <paramref name="folder"/> (relative path, code), with comments and string
    /// literals left out, and white space too ("usingDiffuse.Sampling;", "newRandom(") unless <paramref name="keepWhiteSpace"/>.
    /// </summary>
    internal static IReadOnlyList<(string File, string Code)> CodeOf(string folder, bool keepWhiteSpace = false) => Directory
        .EnumerateFiles(folder, "*.cs", SearchOption.AllDirectories)
        .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
        .Order(StringComparer.Ordinal)
        .Select(f =>
        {
            var lexer = new Lexer(Path.GetRelativePath(folder, f), File.ReadAllText(f), countParamOf: false, keepWhiteSpace);
            lexer.Run();
            return (Path.GetRelativePath(folder, f), lexer.CodeRead);
        })
        .ToArray();

    private static string FindFolder()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Diffuse.slnx"))) return Path.Combine(dir.FullName, "src", "Diffuse");
        throw new InvalidOperationException("the repository root (Diffuse.slnx) is not above the test binaries.");
    }

    private sealed class Lexer(string file, string s, bool countParamOf = true, bool keepWhiteSpace = false)
    {
        private readonly List<Literal> _literals = new();
        private readonly StringBuilder _code = new();
        private int _i;

        public List<Literal> Run()
        {
            Code(inHole: false);
            string code = _code.ToString();
            if (!countParamOf) return _literals;
            for (int at = code.IndexOf("Param.Of(", StringComparison.Ordinal); at >= 0; at = code.IndexOf("Param.Of(", at + 1, StringComparison.Ordinal))
                ParamOfCalls++;
            return _literals;
        }

        /// <summary>The code read so far, without comments, literals and white space.</summary>
        public string CodeRead => _code.ToString();

        private char At(int offset) => _i + offset < s.Length ? s[_i + offset] : '\0';

        private int Line => 1 + s.AsSpan(0, _i).Count('\n');

        // Reads code until the end of the file, or in an interpolation hole until its closing brace.
        private void Code(bool inHole)
        {
            int depth = 0;
            while (_i < s.Length)
            {
                char c = s[_i];
                if (c == '/' && At(1) == '/') { while (_i < s.Length && s[_i] != '\n') _i++; }
                else if (c == '/' && At(1) == '*') { int end = s.IndexOf("*/", _i + 2, StringComparison.Ordinal); _i = end < 0 ? s.Length : end + 2; }
                else if (c == '\'') { _i += At(1) == '\\' ? s.IndexOf('\'', _i + 3) - _i + 1 : 3; }
                else if (c == '"' && At(1) == '"' && At(2) == '"') throw new NotSupportedException($"{file}:{Line}: raw string literals are not read by this lexer.");
                else if (c == '"') String(verbatim: false, interpolated: false, 1);
                else if (c == '@' && At(1) == '"') String(verbatim: true, interpolated: false, 2);
                else if (c == '$' && At(1) == '"') String(verbatim: false, interpolated: true, 2);
                else if ((c == '$' && At(1) == '@' || c == '@' && At(1) == '$') && At(2) == '"') String(verbatim: true, interpolated: true, 3);
                else
                {
                    if (inHole && c == '{') depth++;
                    if (inHole && c == '}' && depth-- == 0) return;
                    if (keepWhiteSpace || !char.IsWhiteSpace(c)) _code.Append(c);
                    _i++;
                }
            }
        }

        private void String(bool verbatim, bool interpolated, int prefix)
        {
            int line = Line;
            string before = _code.ToString();
            var text = new StringBuilder();
            _i += prefix;
            while (_i < s.Length)
            {
                char c = s[_i];
                if (c == '"' && verbatim && At(1) == '"') { text.Append('"'); _i += 2; }
                else if (c == '"') { _i++; break; }
                else if (c == '\\' && !verbatim) { text.Append(c).Append(At(1)); _i += 2; }
                else if (interpolated && (c == '{' || c == '}') && At(1) == c) { text.Append(c); _i += 2; }
                else if (interpolated && c == '{')
                {
                    _i++;
                    Code(inHole: true);
                    _i++;
                    text.Append("{…}");
                }
                else { text.Append(c); _i++; }
            }
            _literals.Add(new Literal(file, line, text.ToString(), before.Length > 60 ? before[^60..] : before));
        }
    }
}
