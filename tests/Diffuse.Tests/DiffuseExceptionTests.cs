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
}
