using System.Text.RegularExpressions;
using Diffuse.Configuration;
using Diffuse.Training;

namespace Diffuse.Tests;

public class DiffuseExceptionTests
{
    private static readonly Dictionary<string, string> Flags = new() { ["TrainingConfig.Steps"] = "--steps", ["Tool.Save"] = "'tool save --into {0}'" };

    [Fact]
    public void MessagesNameParametersInTheLibrarysWordsAndRenderInAFrontEndsWords()
    {
        var e = new DiffuseException($"{Param.Of("TrainingConfig.Steps")} must be at least 1 (got 0); give the same {Param.Of("Trainer.Resume(data)", "data")}.");
        Assert.Equal("TrainingConfig.Steps must be at least 1 (got 0); give the same data.", e.Message);
        Assert.Equal("--steps must be at least 1 (got 0); give the same data.", e.Render(n => Flags.GetValueOrDefault(n)));
        Assert.Equal(["TrainingConfig.Steps", "Trainer.Resume(data)"], Param.Names(e.Template));
        Assert.Contains("TrainingConfig.Steps must be at least 1", e.ToString());

        // An argument appears in the front end's words in place of {0}; the library's text already holds it.
        var saved = new DiffuseException($"Run {Param.Of("Tool.Save", "Tool.Save('runs/a')", "runs/a")} again.");
        Assert.Equal("Run Tool.Save('runs/a') again.", saved.Message);
        Assert.Equal("Run 'tool save --into runs/a' again.", saved.Render(n => Flags.GetValueOrDefault(n)));

        // Messages without parameters are unchanged, and marker characters in a value cannot split a marker.
        Assert.Equal("plain (got 3).", new DiffuseException("plain (got 3).").Render(_ => "x"));
        Assert.Equal("\uFFFDodd", new DiffuseException(Param.Of("A.B", "\uE002odd")).Message);
    }

    [Fact]
    public void AWrappedErrorKeepsItsCauseAndItsParameters()
    {
        var inner = Assert.Throws<DiffuseException>(() => new TrainingConfig(Steps: 0).Validate());
        var outer = new DiffuseException($"cannot train: {inner.Template}", inner);
        Assert.Same(inner, outer.InnerException);
        Assert.Equal("cannot train: TrainingConfig.Steps must be at least 1 (got 0).", outer.Message);
        Assert.Equal("cannot train: --steps must be at least 1 (got 0).", outer.Render(n => Flags.GetValueOrDefault(n)));
    }

    [Fact]
    public void TrainingConfigNamesItsOwnMembers()
    {
        Assert.Equal("TrainingConfig.Steps must be at least 1 (got 0).", Assert.Throws<DiffuseException>(() => new TrainingConfig(Steps: 0).Validate()).Message);
        Assert.Equal("TrainingConfig.BatchSize must be at least 1 (got 0).", Assert.Throws<DiffuseException>(() => new TrainingConfig(BatchSize: 0).Validate()).Message);
        Assert.StartsWith("TrainingConfig.GradientAccumulation 4 exceeds the batch of 2", Assert.Throws<DiffuseException>(() => new TrainingConfig(BatchSize: 2, GradientAccumulation: 4).Validate()).Message);
    }

    /// <summary>
    /// No string of the library names a command-line flag ("--steps") or command ("'diffuse train'"): messages name the
    /// library's parameters through <see cref="Param.Of(string)"/>, and the command line maps them to its flags.
    /// </summary>
    [Fact]
    public void NoLibraryStringNamesACommandLineFlagOrCommand()
    {
        // The arguments the library passes to npm are not messages.
        string[] notMessages = ["--ignore-scripts", "--silent"];
        var cli = new Regex(@"(?<![\w-])--[a-z]|'diffuse [a-z]", RegexOptions.CultureInvariant);
        var found = LibrarySource.Literals.Where(l => cli.IsMatch(l.Text) && !notMessages.Contains(l.Text)).Select(l => $"{l.File}:{l.Line}: {l.Text}").ToArray();
        Assert.True(found.Length == 0, "library strings that name the command line:\n" + string.Join("\n", found));
        Assert.Contains(LibrarySource.Literals, l => l.Text == "--silent");
        Assert.True(LibrarySource.Literals.Count > 1000, $"the lexer found only {LibrarySource.Literals.Count} literals in {LibrarySource.Folder}");
    }

    [Fact]
    public void EveryParameterMarkerIsNamedByALiteralWithOneText()
    {
        var names = LibrarySource.ParameterNames.ToArray();
        Assert.True(names.Length >= 40, $"only {names.Length} Param.Of names found");
        Assert.Equal(LibrarySource.ParamOfCalls, names.Length);
        // A name always reads the same: its text (the second argument, when given) is one per name.
        var texts = LibrarySource.Literals.Zip(LibrarySource.Literals.Skip(1))
            .Where(p => p.First.CodeBefore.EndsWith("Param.Of(", StringComparison.Ordinal))
            .Select(p => (Name: p.First.Text, Text: p.Second.CodeBefore.EndsWith("Param.Of(,", StringComparison.Ordinal) ? p.Second.Text : p.First.Text))
            .GroupBy(p => p.Name).Where(g => g.Select(p => p.Text).Distinct().Count() > 1).Select(g => g.Key).ToArray();
        Assert.True(texts.Length == 0, "names shown with different texts: " + string.Join(", ", texts));
    }
}
