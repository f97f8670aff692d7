using System.Diagnostics;
using System.Text;
using Diffuse.Tests.Distributed;

namespace Diffuse.Tests.Packaging;

/// <summary>Runs a program (the dotnet CLI, an installed tool, a built app) as a user would, and keeps all it printed.</summary>
internal static class ChildProcess
{
    /// <summary>The dotnet host running these tests (<c>dotnet test</c> names it in DOTNET_HOST_PATH), else dotnet on PATH.</summary>
    public static string Dotnet =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";

    /// <summary>
    /// The environment of every child: no telemetry or banners, one libtorch thread, and no build servers or reused
    /// MSBuild nodes that would outlive the test. MSBuild settings that <c>dotnet test</c> passes down to its own
    /// children are removed, so that each child picks its SDK as a user's shell would.
    /// </summary>
    private static void Prepare(ProcessStartInfo info)
    {
        foreach (string key in new[] { "MSBuildExtensionsPath", "MSBuildSDKsPath", "MSBUILD_EXE_PATH", "MSBuildLoadMicrosoftTargetsReadOnly" })
            info.Environment.Remove(key);
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        info.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        info.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        info.Environment["UseSharedCompilation"] = "false";
        info.Environment["DIFFUSE_THREADS"] = "1";
        // The shim of a tool installed with --tool-path finds the runtime through DOTNET_ROOT when dotnet is not in a
        // default place.
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("DOTNET_ROOT")) && Path.IsPathRooted(Dotnet))
            info.Environment["DOTNET_ROOT"] = Path.GetDirectoryName(new FileInfo(Dotnet).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Dotnet);
    }

    /// <summary>Runs <paramref name="program"/> with <paramref name="arguments"/> in <paramref name="folder"/>; kills it (and its children) after <paramref name="timeout"/>.</summary>
    public static JobResult Run(string program, IEnumerable<string> arguments, string folder, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(program)
        {
            WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (string a in arguments) info.ArgumentList.Add(a);
        Prepare(info);
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        var clock = Stopwatch.StartNew();
        using var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.Append(e.Data).Append('\n'); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.Append(e.Data).Append('\n'); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        string command = $"{program} {string.Join(' ', info.ArgumentList)}";
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            throw new Xunit.Sdk.XunitException(
                $"'{command}' (in {folder}) did not finish within {timeout.TotalSeconds:F0} s and was stopped. It printed:\n{stderr}\n{stdout}");
        }
        process.WaitForExit(); // drains the asynchronous readers
        return new JobResult(process.ExitCode, stdout.ToString(), stderr.ToString(), clock.Elapsed);
    }

    /// <summary><see cref="Run"/> of the dotnet CLI, failing with everything it printed unless it exits with 0.</summary>
    public static JobResult RunDotnet(string folder, TimeSpan timeout, params string[] arguments)
    {
        var result = Run(Dotnet, arguments, folder, timeout);
        result.AssertSucceeded($"dotnet {string.Join(' ', arguments)} (in {folder})");
        return result;
    }
}
