using System.Text;

namespace Diffuse;

/// <summary>
/// Names a parameter of the library inside a <see cref="DiffuseException"/> message, so that each reader sees it in
/// their own words: <c>$"{Param.Of("TrainingConfig.Steps")} must be at least 1 (got {Steps})."</c> reads
/// "TrainingConfig.Steps must be at least 1 (got 0)." from the library (<see cref="DiffuseException.Message"/>) and
/// "--steps must be at least 1 (got 0)." from the command line, which maps the name to its flag
/// (<see cref="DiffuseException.Render"/>).
/// <para>
/// A name is how a library user finds the parameter: a member of a record (<c>TrainingConfig.Steps</c>), a parameter
/// of a method (<c>Trainer.Resume(data)</c>, shown as <c>data</c>), a method (<c>Trainer.Resume</c>) or a setting
/// (<c>FormulationConfig.Kind = FormulationKind.Ddpm</c>). The same name always shows the same words.
/// </para>
/// </summary>
public static class Param
{
    // Private-use characters: no file name, number or sentence in a message contains them.
    private const char Begin = '\uE000', Separator = '\uE001', End = '\uE002';

    /// <summary>The marker of <paramref name="name"/>, shown as the name itself.</summary>
    /// <param name="name">The library's name of the parameter, such as <c>TrainingConfig.Steps</c>.</param>
    public static string Of(string name) => Of(name, name);

    /// <summary>The marker of <paramref name="name"/>, shown by the library as <paramref name="text"/>.</summary>
    /// <param name="name">The library's name, such as <c>Trainer.Resume(data)</c>.</param>
    /// <param name="text">What the library shows in its place, such as <c>data</c>.</param>
    public static string Of(string name, string text) => $"{Begin}{Clean(name)}{Separator}{Clean(text)}{End}";

    /// <summary>
    /// The marker of <paramref name="name"/> with an argument, shown by the library as <paramref name="text"/> (which
    /// should contain the argument); a front end's words for the name show the argument in place of <c>{0}</c>.
    /// </summary>
    /// <param name="name">The library's name, such as <c>SamplerRecord.Save</c>.</param>
    /// <param name="text">What the library shows in its place.</param>
    /// <param name="argument">The value a front end may show with its words, such as a model folder.</param>
    public static string Of(string name, string text, string argument) =>
        $"{Begin}{Clean(name)}{Separator}{Clean(text)}{Separator}{Clean(argument)}{End}";

    /// <summary>The names of the markers in <paramref name="message"/>, in order.</summary>
    public static IReadOnlyList<string> Names(string message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var names = new List<string>();
        Render(message, name =>
        {
            names.Add(name);
            return null;
        });
        return names;
    }

    /// <summary>
    /// <paramref name="template"/> with every marker replaced by <paramref name="nameFor"/>'s words for its name, or
    /// the library's text where it returns null.
    /// </summary>
    internal static string Render(string template, Func<string, string?> nameFor)
    {
        int at = template.IndexOf(Begin);
        if (at < 0) return template;
        var text = new StringBuilder(template.Length);
        int done = 0;
        while (at >= 0)
        {
            int end = template.IndexOf(End, at);
            if (end < 0) break;
            var parts = template.Substring(at + 1, end - at - 1).Split(Separator);
            text.Append(template, done, at - done);
            string? words = nameFor(parts[0]);
            text.Append(words is null ? parts[Math.Min(1, parts.Length - 1)] : parts.Length > 2 ? words.Replace("{0}", parts[2], StringComparison.Ordinal) : words);
            done = end + 1;
            at = template.IndexOf(Begin, done);
        }
        text.Append(template, done, template.Length - done);
        return text.ToString();
    }

    // A marker character inside a value (never seen in practice) would split the marker: it becomes U+FFFD instead of
    // an exception thrown while another error is being reported.
    private static string Clean(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return value.AsSpan().IndexOfAny(Begin, Separator, End) < 0 ? value
            : value.Replace(Begin, '\uFFFD').Replace(Separator, '\uFFFD').Replace(End, '\uFFFD');
    }
}
