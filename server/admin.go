package server

import "github.com/labstack/echo/v4"

// mountAdmin registers the admin API and console; the admin package is not in yet.
func (s *Server) mountAdmin(e *echo.Echo) {}
