using Diffuse.Cli;

namespace Diffuse.Tests.Cli;

/// <summary>Runs the command line in-process and checks the shape of user errors.</summary>
internal static class Cli
{
    internal static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>A user error: non-zero exit, one line "error: …" without a stack trace, naming every fragment.</summary>
    internal static void AssertUserError((int Code, string Out, string Err) result, params string[] fragments)
    {
        Assert.NotEqual(0, result.Code);
        Assert.StartsWith("error: ", result.Err);
        Assert.DoesNotContain("   at ", result.Err);
        Assert.Single(result.Err.Trim().Split('\n'));
        foreach (var f in fragments) Assert.Contains(f, result.Err);
    }
}
